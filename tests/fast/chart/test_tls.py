"""TLS on by default: the chart makes a CA and a server certificate (kept across upgrades by `lookup`), Redis
serves TLS only, and the broker Secret carries a rediss:// URL and the CA that every client pod mounts (the
operator and the exporter in the chart, the worker and beat pods the operator builds). The generated
certificate is served by a real redis-server in tests/redis/chart/test_rendered.py."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from queueworker.api.spec import Schedule
from queueworker.builders.beat import beat_deployment
from queueworker.builders.common import BROKER_CA_DIR
from queueworker.builders.worker import worker_deployment
from queueworker.settings import Settings

from tests.fast.unit.test_builders import make_qw
from tests.support.rendering import CHART, RELEASE, find, one, pod_spec, render, render_files

Obj = dict[str, Any]


def secret_data(obj: Obj) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in obj["data"].items()}


def test_default_install_serves_tls_only_and_hands_clients_the_ca() -> None:
    objects = render()
    broker = secret_data(one(objects, "Secret", "queueworker-broker"))
    tls = secret_data(one(objects, "Secret", "-redis-tls"))
    assert broker["url"].startswith(f"rediss://:{broker['password']}@{RELEASE}-queueworker-redis.")
    assert broker["url"].endswith(f"?ssl_ca_certs={BROKER_CA_DIR}/ca.crt&ssl_cert_reqs=required")
    assert broker["ca.crt"] == tls["ca.crt"] and "BEGIN CERTIFICATE" in tls["ca.crt"]
    conf = one(objects, "ConfigMap", "-redis")["data"]
    assert "port 0" in conf["redis.conf"].splitlines() and "tls-port 6379" in conf["redis.conf"]
    assert "--tls --cacert /etc/redis/tls/ca.crt" in conf["ping.sh"]
    for kind, name in (("Deployment", "-operator"), ("Deployment", "-exporter")):
        pod = pod_spec(one(objects, kind, name))
        assert pod is not None
        (volume,) = [v for v in pod["volumes"] if v["name"] == "broker-tls"]
        assert volume["secret"]["secretName"] == "queueworker-broker"
        assert volume["secret"]["items"] == [{"key": "ca.crt", "path": "ca.crt"}]
        mounts = [m for c in pod["containers"] for m in c["volumeMounts"] if m["name"] == "broker-tls"]
        assert mounts and all(m["mountPath"] == BROKER_CA_DIR for m in mounts), name


def test_worker_and_beat_pods_mount_the_broker_ca() -> None:
    settings = Settings()
    scheduled = make_qw(
        schedules=(Schedule("digest", "shop.tasks.digest", "0 7 * * *", None, queue="emails"),)
    )
    beat = beat_deployment([scheduled], settings)
    assert beat is not None
    for obj in (worker_deployment(make_qw(), settings), beat):
        pod = obj["spec"]["template"]["spec"]
        (volume,) = [v for v in pod["volumes"] if v["name"] == "broker-tls"]
        assert volume["secret"]["secretName"] == settings.broker_secret
        assert volume["secret"]["optional"] is True, "a plaintext broker's Secret has no ca.crt"
        (container,) = pod["containers"]
        assert {"name": "broker-tls", "mountPath": BROKER_CA_DIR, "readOnly": True} in container[
            "volumeMounts"
        ]


def test_tls_off_is_one_value() -> None:
    objects = render({"redis": {"tls": {"enabled": False}}})
    broker = secret_data(one(objects, "Secret", "queueworker-broker"))
    assert broker["url"].startswith("redis://") and "ca.crt" not in broker
    assert not [s for s in find(objects, "Secret") if s["metadata"]["name"].endswith("-redis-tls")]
    assert "port 6379" in one(objects, "ConfigMap", "-redis")["data"]["redis.conf"].splitlines()


def test_existing_tls_secret_must_exist_and_hold_the_ca() -> None:
    with pytest.raises(Exception, match=r"redis.tls.existingSecret \"cert-manager-redis\": not found"):
        render_files({"redis": {"tls": {"existingSecret": "cert-manager-redis"}}})


def test_certificate_is_looked_up_before_it_is_generated() -> None:
    """Offline rendering answers `lookup` with nothing; on a cluster an upgrade reads the kept Secret."""
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    start = helpers.index('define "queueworker.redisTlsMaterial"')
    body = helpers[start:]
    assert body.index('lookup "v1" "Secret"') < body.index("genCA")
