"""redis.mode=sentinel: the data StatefulSet runs a primary and redis.sentinel.replicas replicas (soft
anti-affinity, a PDB, min-replicas-to-write, a preStop failover), three sentinels run beside it with their
own password and NetworkPolicy, and the broker Secret carries the sentinel URL and what clients need (the
sentinels' password and master set, which every client reads as optional Secret keys). The default stays
standalone. The rendered sentinel.conf is replayed on this machine against a real redis-server."""

from __future__ import annotations

import base64
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import redis
from queueworker.broker.url import parse

from tests.support.redis_server import RedisServer, free_port
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


def test_rendered_sentinel_config_runs_against_a_real_primary(tmp_path: Path) -> None:
    """The sentinel init script, replayed here (plaintext: TLS is covered by test_tls), writes a config a
    real sentinel starts with and that finds the real primary named in it."""
    objects = render({"redis": {"mode": "sentinel", "tls": {"enabled": False}}})
    broker = secret_data(one(objects, "Secret", "queueworker-broker"))
    sentinels = one(objects, "StatefulSet", "-redis-sentinel")
    (init,) = sentinels["spec"]["template"]["spec"]["initContainers"]
    with RedisServer(password=broker["password"]) as primary:
        secrets = {"redis": tmp_path / "redis", "sentinel": tmp_path / "sentinel"}
        for key, folder in secrets.items():
            folder.mkdir()
            (folder / "password").write_text(broker["password" if key == "redis" else "sentinel-password"])
        run = tmp_path / "run"
        run.mkdir()
        port = free_port()
        script = (
            init["command"][2]
            .replace("/run/secrets/redis", str(secrets["redis"]))
            .replace("/run/secrets/sentinel", str(secrets["sentinel"]))
            .replace("/run/sentinel", str(run))
            .replace(
                f"{RELEASE}-queueworker-redis-0.{RELEASE}-queueworker-redis-headless.{NAMESPACE}.svc",
                "127.0.0.1",
            )
            .replace("6379 2", f"{primary.port} 2")
            .replace("port 26379", f"port {port}")
            .replace("-p 26379", "-p 1")  # no sentinel runs yet: the script falls back to pod 0
        )
        subprocess.run(
            ["/bin/sh", "-c", script], check=True, env={"POD_NAME": "s-0", "PATH": "/usr/bin:/bin"}
        )
        conf = (run / "sentinel.conf").read_text()
        assert "sentinel monitor mymaster 127.0.0.1" in conf and "requirepass" in conf
        proc = subprocess.Popen(
            ["redis-server", str(run / "sentinel.conf"), "--sentinel"], stdout=subprocess.DEVNULL
        )
        try:
            client = redis.Redis(port=port, password=broker["sentinel-password"], socket_timeout=2)
            deadline = time.monotonic() + 20
            while True:
                try:
                    state: Any = client.sentinel_master("mymaster")
                    if "master" in str(state.get("flags", "")) and int(state["port"]) == primary.port:
                        break
                except redis.RedisError:
                    pass
                assert time.monotonic() < deadline, "the sentinel never saw the primary"
                time.sleep(0.2)
            assert "s_down" not in str(state.get("flags", "")), "it authenticates to the primary"
            try:
                redis.Redis(port=port, socket_timeout=2).ping()
            except redis.AuthenticationError:
                pass
            else:
                raise AssertionError("the sentinel answers without its password")
        finally:
            proc.kill()
            proc.wait()
