"""The Redis StatefulSet: password from a Secret (generated once, or the user's), AOF with the chosen
fsync, noeviction, PVC, probes that authenticate. The rendered config, init script and probe script are
run against a real redis-server."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.support.redis_server import free_port
from tests.support.rendering import CHART, NAMESPACE, RELEASE, containers, find, one, render


def redis_objects(values: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    objects = render(values or {})
    return one(objects, "StatefulSet", "-redis"), one(objects, "ConfigMap", "-redis")


def config_lines(configmap: dict[str, Any]) -> list[str]:
    return [
        line.strip()
        for line in configmap["data"]["redis.conf"].splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


def test_config_keeps_every_queued_task() -> None:
    _, cm = redis_objects()
    lines = config_lines(cm)
    for wanted in (
        "appendonly yes",
        "appendfsync everysec",
        "maxmemory-policy noeviction",
        "dir /data",
        "include /run/redis/auth.conf",
    ):
        assert wanted in lines
    assert not any(line.startswith("maxmemory ") for line in lines)
    assert not any("requirepass" in line for line in lines), "the password never sits in the ConfigMap"
    _, tuned = redis_objects({"redis": {"appendfsync": "always", "maxmemory": "2gb"}})
    assert "appendfsync always" in config_lines(tuned) and "maxmemory 2gb" in config_lines(tuned)
    assert "maxmemory-policy noeviction" in config_lines(tuned)


def test_statefulset_shape() -> None:
    sts, _ = redis_objects()
    spec = sts["spec"]
    assert spec["replicas"] == 1
    (claim,) = spec["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "8Gi"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["redis-server", "/etc/redis/redis.conf"]
    assert container["resources"] == {
        "requests": {"cpu": "100m", "memory": "256Mi"},
        "limits": {"cpu": "1", "memory": "1Gi"},
    }
    assert {m["mountPath"] for m in container["volumeMounts"]} == {
        "/etc/redis",
        "/etc/redis/tls",
        "/run/redis",
        "/data",
        "/run/secrets/redis",
    }
    assert spec["template"]["metadata"]["annotations"]["checksum/config"]
    other_sts, _ = redis_objects({"redis": {"appendfsync": "no"}})
    assert (
        other_sts["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        != spec["template"]["metadata"]["annotations"]["checksum/config"]
    ), "a config change restarts Redis"
    eph, _ = redis_objects(
        {"redis": {"persistence": {"enabled": False}, "resources": {"limits": {"memory": "2Gi"}}}}
    )
    assert "volumeClaimTemplates" not in eph["spec"]
    assert {"name": "data", "emptyDir": {}} in eph["spec"]["template"]["spec"]["volumes"]
    assert eph["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] == {
        "cpu": "1",
        "memory": "2Gi",
    }
    sc, _ = redis_objects({"redis": {"persistence": {"storageClass": "fast", "size": "20Gi"}}})
    assert sc["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] == "fast"


def test_password_is_never_on_a_command_line_or_in_env() -> None:
    sts, cm = redis_objects()
    pod = sts["spec"]["template"]["spec"]
    for c in containers(pod):
        assert not c.get("env"), f"{c['name']}: the password comes from the mounted Secret file"
        commands = [*c.get("command", []), *c.get("args", [])]
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            commands += (c.get(probe) or {}).get("exec", {}).get("command", [])
        assert "-a" not in " ".join(commands).split(), c["name"]
    probe_script = cm["data"]["ping.sh"]
    assert "REDISCLI_AUTH" in probe_script and " -a " not in probe_script
    (auth,) = [v for v in pod["volumes"] if v["name"] == "auth"]
    assert auth["secret"] == {
        "secretName": "queueworker-broker",
        "defaultMode": 0o440,
        "items": [{"key": "password", "path": "password"}],
    }


def test_generated_password_and_url_agree() -> None:
    objects = render({})
    secret = one(objects, "Secret", "queueworker-broker")
    password = base64.b64decode(secret["data"]["password"]).decode()
    url = base64.b64decode(secret["data"]["url"]).decode()
    assert re.fullmatch(r"[A-Za-z0-9]{32}", password)
    host = f"{RELEASE}-queueworker-redis.{NAMESPACE}.svc"
    assert url == (
        f"rediss://:{password}@{host}:6379/0?ssl_ca_certs=/etc/queueworker/broker-tls/ca.crt&ssl_cert_reqs=required"
    )
    service = one(objects, "Service", f"{RELEASE}-queueworker-redis")
    assert service["spec"]["ports"][0]["port"] == 6379


def test_password_is_looked_up_before_it_is_generated() -> None:
    """Offline rendering cannot reach a cluster, so `lookup` answers nothing; on a cluster the template
    reads the existing Secret back first (tests/e2e checks that an upgrade keeps the password)."""
    template = (CHART / "templates" / "broker-secret.yaml").read_text(encoding="utf-8")
    lookup = template.index('lookup "v1" "Secret" .Release.Namespace $name')
    assert lookup < template.index("randAlphaNum 32")
    assert 'index $existing.data "password" | b64dec' in template


def test_existing_secret_is_used_as_is() -> None:
    values = {
        "redis": {
            "auth": {
                "existingSecret": "mine",
                "existingSecretPasswordKey": "pw",
                "existingSecretUrlKey": "broker",
            }
        }
    }
    objects = render(values)
    secrets = [s["metadata"]["name"] for s in find(objects, "Secret")]
    assert secrets == [f"{RELEASE}-queueworker-redis-tls"], "the user's Secret holds the password and the URL"
    sts = one(objects, "StatefulSet", "-redis")
    (auth,) = [v for v in sts["spec"]["template"]["spec"]["volumes"] if v["name"] == "auth"]
    assert auth["secret"]["secretName"] == "mine"
    assert auth["secret"]["items"] == [{"key": "pw", "path": "password"}]
    env = {
        e["name"]: e
        for e in one(objects, "Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["QUEUEWORKER_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {"name": "mine", "key": "broker"}
    assert env["QUEUEWORKER_BROKER_SECRET"]["value"] == "mine"


def test_pdb_and_services() -> None:
    objects = render({})
    pdb = one(objects, "PodDisruptionBudget", "-redis")
    sts = one(objects, "StatefulSet", "-redis")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == sts["spec"]["selector"]["matchLabels"]
    assert not find(render({"redis": {"pdb": {"enabled": False}}}), "PodDisruptionBudget")
    headless = one(objects, "Service", "-redis-headless")
    assert headless["spec"]["publishNotReadyAddresses"] is True


@pytest.fixture
def rendered_redis(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The rendered Redis pod, replayed on this machine: init script, redis.conf, probe script, with the
    pod's paths mapped under tmp_path and the port moved to a free one."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        pytest.fail("redis-server and redis-cli are needed (apt-get install redis-server; .ci/run does it)")
    objects = render({"redis": {"appendfsync": "always", "maxmemory": "64mb"}})
    secret = one(objects, "Secret", "queueworker-broker")
    sts = one(objects, "StatefulSet", "-redis")
    cm = one(objects, "ConfigMap", "-redis")
    port = free_port()
    paths = {
        "/run/secrets/redis": tmp_path / "secret",
        "/run/redis": tmp_path / "run",
        "/etc/redis": tmp_path / "etc",
        "/data": tmp_path / "data",
    }
    for p in paths.values():
        p.mkdir()

    def localize(text: str) -> str:
        for pod_path, local in paths.items():
            text = text.replace(pod_path, str(local))
        return text.replace("6379", str(port))

    password = base64.b64decode(secret["data"]["password"]).decode()
    (paths["/run/secrets/redis"] / "password").write_text(password, encoding="utf-8")
    for key, text in cm["data"].items():
        (paths["/etc/redis"] / key).write_text(localize(text), encoding="utf-8")
    tls = one(objects, "Secret", "-redis-tls")  # TLS is on by default: the pod's mounted certificate
    (paths["/etc/redis"] / "tls").mkdir()
    for key, value in tls["data"].items():
        (paths["/etc/redis"] / "tls" / key).write_bytes(base64.b64decode(value))
    ssl = {"ssl": True, "ssl_ca_certs": str(paths["/etc/redis"] / "tls" / "ca.crt")}
    (init,) = sts["spec"]["template"]["spec"]["initContainers"]
    subprocess.run([init["command"][0], init["command"][1], localize(init["command"][2])], check=True)
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    config = localize(container["command"][1])
    proc = subprocess.Popen(
        ["redis-server", config, "--bind", "127.0.0.1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        yield {
            "port": port,
            "password": password,
            "container": container,
            "localize": localize,
            "data": paths["/data"],
            "ssl": ssl,
        }
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def probe_passes(rendered: dict[str, Any], probe: str) -> bool:
    command = [rendered["localize"](part) for part in rendered["container"][probe]["exec"]["command"]]
    return subprocess.run(command, capture_output=True, check=False, timeout=10).returncode == 0


def test_rendered_redis_runs_authenticates_and_persists(rendered_redis: dict[str, Any]) -> None:
    port, password = rendered_redis["port"], rendered_redis["password"]
    client = redis.Redis(host="127.0.0.1", port=port, password=password, **rendered_redis["ssl"])
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=port, **rendered_redis["ssl"]).ping()
    with pytest.raises(redis.ConnectionError):  # TLS only: a plaintext client gets nothing
        redis.Redis(host="127.0.0.1", port=port, password=password, socket_timeout=2).ping()
    assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    assert client.config_get("appendonly") == {"appendonly": "yes"}
    assert client.config_get("appendfsync") == {"appendfsync": "always"}
    assert client.config_get("maxmemory") == {"maxmemory": str(64 * 1024 * 1024)}
    client.lpush("celery", "task-1")
    assert any((rendered_redis["data"] / "appendonlydir").iterdir()), "an AOF is written under /data"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert probe_passes(rendered_redis, probe), probe
    # A wrong password fails the probes: they really authenticate.
    secret_file = Path(rendered_redis["localize"]("/run/secrets/redis/password"))
    secret_file.write_text("wrong", encoding="utf-8")
    assert not probe_passes(rendered_redis, "readinessProbe")
    assert not probe_passes(rendered_redis, "livenessProbe")
