"""The Redis StatefulSet: password from a Secret (generated once, or the user's), AOF with the chosen
fsync, noeviction, PVC, probes that authenticate. The rendered config, init script and probe script are
run against a real redis-server in tests/redis/chart/test_rendered.py."""

from __future__ import annotations

import base64
import re
from typing import Any

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
