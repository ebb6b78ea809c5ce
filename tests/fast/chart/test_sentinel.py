"""redis.mode=sentinel: the data StatefulSet runs a primary and redis.sentinel.replicas replicas (soft
anti-affinity, a PDB, min-replicas-to-write, a preStop failover), three sentinels run beside it with their
own password and NetworkPolicy, and the broker Secret carries the sentinel URL and what clients need (the
sentinels' password and master set, which every client reads as optional Secret keys). The default stays
standalone. The rendered sentinel.conf is replayed against a real redis-server in
tests/redis/chart/test_rendered.py."""

from __future__ import annotations

import base64
import re
from typing import Any

from queueworker.broker.url import parse

from tests.support.rendering import NAMESPACE, RELEASE, find, one, pod_spec, render

SENTINEL = {"redis": {"mode": "sentinel"}}


def secret_data(obj: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in obj["data"].items()}


def data_statefulset(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return next(o for o in find(objects, "StatefulSet") if o["metadata"]["name"].endswith("-redis"))


def test_default_is_standalone() -> None:
    objects = render()
    assert data_statefulset(objects)["spec"]["replicas"] == 1
    assert not [o for o in find(objects, "StatefulSet") if "sentinel" in o["metadata"]["name"]]
    assert "sentinel-password" not in one(objects, "Secret", "queueworker-broker")["data"]


def test_sentinel_mode_objects() -> None:
    objects = render(SENTINEL)
    sts = data_statefulset(objects)
    assert sts["spec"]["replicas"] == 3
    pod = sts["spec"]["template"]["spec"]
    preferred = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert preferred[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    (container,) = pod["containers"]
    assert container["lifecycle"]["preStop"]["exec"]["command"] == ["/bin/sh", "/etc/redis/prestop.sh"]
    conf = one(objects, "ConfigMap", "-redis")["data"]
    assert "min-replicas-to-write 1" in conf["redis.conf"]
    assert "sentinel failover mymaster" in conf["prestop.sh"]
    (init,) = pod["initContainers"]
    assert "masterauth" in init["command"][2] and "replicaof" in init["command"][2]
    pdbs = {o["metadata"]["name"]: o["spec"] for o in find(objects, "PodDisruptionBudget")}
    assert pdbs[f"{RELEASE}-queueworker-redis"] == {"maxUnavailable": 1, "selector": sts["spec"]["selector"]}
    assert pdbs[f"{RELEASE}-queueworker-redis-sentinel"]["maxUnavailable"] == 1
    sentinels = one(objects, "StatefulSet", "-redis-sentinel")
    assert sentinels["spec"]["replicas"] == 3
    policies = {o["metadata"]["name"]: o for o in find(objects, "NetworkPolicy")}
    assert policies[f"{RELEASE}-queueworker-redis-sentinel"]["spec"]["ingress"][0]["ports"] == [
        {"port": "sentinel", "protocol": "TCP"}
    ]


def test_broker_secret_carries_what_every_client_needs() -> None:
    objects = render(SENTINEL)
    broker = secret_data(one(objects, "Secret", "queueworker-broker"))
    assert re.fullmatch(r"[A-Za-z0-9]{32}", broker["sentinel-password"])
    assert broker["sentinel-password"] != broker["password"], "data and sentinels have separate passwords"
    env = {"QUEUEWORKER_SENTINEL_MASTER": broker["sentinel-master"], "QUEUEWORKER_SENTINEL_PASSWORD": "x"}
    parsed = parse(broker["url"], env)
    assert parsed.sentinel and parsed.master == "mymaster" and parsed.tls
    assert parsed.hosts == ((f"{RELEASE}-queueworker-redis-sentinel.{NAMESPACE}.svc", 26379),)
    assert parsed.password == broker["password"]
    for name in ("-operator", "-exporter"):
        pod = pod_spec(one(objects, "Deployment", name))
        assert pod is not None
        env_names = {e["name"]: e for e in pod["containers"][0]["env"]}
        ref = env_names["QUEUEWORKER_SENTINEL_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "queueworker-broker", "key": "sentinel-password", "optional": True}
