"""The Redis NetworkPolicy, enforced: a pod without the broker-client label cannot reach Redis, and the
same pod with the label can. The local cluster enforces NetworkPolicy with kube-router's firewall
(`make cluster-up` runs it); kind enforces it with its own network plugin (kindnet). A pod that reaches
Redis gets its `-NOAUTH` answer to PING: proof it spoke to Redis, not to anything in between. Each pod
tries for 20 s, so the unlabelled one is refused for as long as the labelled one had to get through."""

from __future__ import annotations

import uuid

import pytest

from tests.e2e.cluster import broker_ca_volume, client_pod, restricted_container, run_to_completion
from tests.e2e.conftest import Release, report

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

PROBE = """
import os, socket, ssl, sys, time
host, ca = sys.argv[1], sys.argv[2]
# TLS, verifying Redis's certificate and name, when the broker Secret carries a CA (the chart's default).
tls = ssl.create_default_context(cafile=ca) if os.path.exists(ca) else None
# A new pod's address reaches the firewall's sets a moment after it starts: try for 20 s, as clients do.
deadline, last = time.monotonic() + 20, ""
while time.monotonic() < deadline:
    try:
        with socket.create_connection((host, 6379), timeout=3) as raw:
            conn = tls.wrap_socket(raw, server_hostname=host) if tls else raw
            conn.settimeout(5)
            conn.sendall(b"PING\\r\\n")
            print("answer:", conn.recv(64).decode(errors="replace").strip(), "tls" if tls else "", flush=True)
            break
    except OSError as exc:
        last = f"{type(exc).__name__} {exc}"
        time.sleep(1)
else:
    print("unreachable for 20 s:", last, flush=True)
"""


def probe(release: Release, labels: dict[str, str]) -> str:
    name = f"netcheck-{uuid.uuid4().hex[:8]}"
    host = f"{release.fullname}-redis.{release.namespace}.svc"
    volume, mount = broker_ca_volume()
    command = ["python", "-c", PROBE, host, f"{mount['mountPath']}/ca.crt"]
    container = restricted_container(
        "probe", f"queueworker/worker:{release.tag}", command, env=[], mounts=[mount]
    )
    pod = client_pod(name, container, [volume], labels)
    return run_to_completion(release.cluster, release.namespace, pod).strip()


def test_only_broker_clients_reach_redis(release: Release) -> None:
    stranger = probe(release, {"app": "stranger"})
    client = probe(release, {"app": "stranger", "queueworker.dev/broker-client": "true"})
    report(f"network policy: unlabelled pod -> {stranger!r}; broker-client pod -> {client!r}")
    assert client.startswith("answer:") and "NOAUTH" in client, client
    assert stranger.startswith("unreachable"), f"a pod without the label reached Redis: {stranger}"
