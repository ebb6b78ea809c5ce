"""The chart's Redis, replayed on this machine (the redis tier: real redis-server processes; what the
chart renders is checked in tests/fast/chart): the rendered config, init script and probe script of the
Redis pod run against a real redis-server; the rendered sentinel.conf against a real primary; the
generated TLS certificate is served by a real redis-server and verified by a client using the broker
Secret as-is."""

from __future__ import annotations

import base64
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from queueworker.broker.client import connect
from queueworker.builders.common import BROKER_CA_DIR

from tests.fast.chart.test_sentinel import secret_data
from tests.support.redis_server import RedisServer, free_port
from tests.support.rendering import NAMESPACE, RELEASE, one, render
from tests.support.tls import TlsFiles, make_tls


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


def test_the_generated_certificate_is_served_and_verified(tmp_path: Path) -> None:
    """A real redis-server with the chart's tls.crt/tls.key, and a client given the broker Secret's URL
    and ca.crt (the host swapped for loopback, which the certificate also names)."""
    objects = render()
    tls = secret_data(one(objects, "Secret", "-redis-tls"))
    broker = secret_data(one(objects, "Secret", "queueworker-broker"))
    for key in ("tls.crt", "tls.key", "ca.crt"):
        (tmp_path / key).write_text(tls[key])
    (tmp_path / "client-ca.crt").write_text(broker["ca.crt"])
    served = TlsFiles(
        ca=tmp_path / "ca.crt",
        cert=tmp_path / "tls.crt",
        key=tmp_path / "tls.key",
        client_cert=tmp_path / "tls.crt",
        client_key=tmp_path / "tls.key",
    )
    with RedisServer(password=broker["password"], tls=served) as server:
        host = broker["url"].split("@", 1)[1].split(":", 1)[0]
        url = broker["url"].replace(host, "127.0.0.1").replace(":6379/", f":{server.port}/")
        url = url.replace(f"{BROKER_CA_DIR}/ca.crt", str(tmp_path / "client-ca.crt"))
        assert connect(url).ping()
        other = make_tls(tmp_path / "other")
        wrong_ca = url.replace(str(tmp_path / "client-ca.crt"), str(other.ca))
        with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
            connect(wrong_ca).ping()
