"""The objects the local cluster writes for its add-ons (KEDA, the Prometheus Operator, prometheus-adapter,
metrics-server) are valid Kubernetes objects, every pod meets the restricted Pod Security Standard, and
the External-metrics APIService names one server at a time. (The add-ons' own CRDs and ClusterRoles,
read from their modules, are applied and judged by the real API server at `make cluster-up`.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hack.cluster import keda, metrics_apis, monitoring, upstream
from hack.cluster.certs import Certs
from tests.support.validate import object_problems


@pytest.fixture
def certs(tmp_path: Path) -> Certs:
    return Certs.ensure(tmp_path)


@pytest.fixture
def written(certs: Certs, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every object the add-ons' modules write, the upstream ClusterRoles stood in for."""

    def role(name: str, path: str, role_name: str) -> dict[str, Any]:
        del name, path
        rule = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}
        return {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": role_name},
            "rules": [rule],
        }

    monkeypatch.setattr(upstream, "cluster_role", role)
    objects = keda.objects(certs) + monitoring.objects() + metrics_apis.objects(certs)
    return [*objects, metrics_apis.external_metrics("keda", certs)]


def test_every_object_is_valid_for_the_cluster_version(written: list[dict[str, Any]]) -> None:
    problems = {
        f"{o['kind']} {o['metadata'].get('namespace', '')}/{o['metadata']['name']}": p
        for o in written
        if (p := object_problems(o, "1.35.0"))
    }
    assert not problems, problems


def test_every_pod_is_restricted(written: list[dict[str, Any]]) -> None:
    deployments = [o for o in written if o["kind"] == "Deployment"]
    assert {d["metadata"]["name"] for d in deployments} >= {
        "keda-operator",
        "keda-metrics-apiserver",
        "keda-admission-webhooks",
        "prometheus-operator",
        "prometheus-adapter",
        "metrics-server",
    }
    for deployment in deployments:
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        for container in pod["containers"]:
            sc = container["securityContext"]
            assert sc["runAsNonRoot"] and not sc["allowPrivilegeEscalation"], container["name"]
            assert sc["capabilities"]["drop"] == ["ALL"], container["name"]
            assert container["imagePullPolicy"] == "Never", "the add-on images are built here, never pulled"
            assert container["readinessProbe"], container["name"]


def test_the_prometheus_selects_every_monitor_and_rule_everywhere() -> None:
    (prometheus,) = [o for o in monitoring.prometheus() if o["kind"] == "Prometheus"]
    spec = prometheus["spec"]
    for kind in ("serviceMonitor", "podMonitor", "rule"):
        assert spec[f"{kind}Selector"] == {} and spec[f"{kind}NamespaceSelector"] == {}, kind


@pytest.mark.parametrize("provider", ["keda", "adapter"])
def test_one_external_metrics_server_at_a_time(certs: Certs, provider: metrics_apis.Provider) -> None:
    service = metrics_apis.external_metrics(provider, certs)
    assert service["metadata"]["name"] == "v1beta1.external.metrics.k8s.io"
    expected = (
        ("keda-metrics-apiserver", "keda") if provider == "keda" else ("prometheus-adapter", "monitoring")
    )
    assert (service["spec"]["service"]["name"], service["spec"]["service"]["namespace"]) == expected
    assert service["spec"]["caBundle"], "the API server verifies the extension API server"


def test_the_adapter_serves_the_series_mode_hpa_selects() -> None:
    from queueworker.builders.autoscaling import LENGTH_METRIC, OLDEST_WAIT_METRIC, QUEUE_LABEL

    (rule,) = metrics_apis.ADAPTER_CONFIG["externalRules"]
    assert LENGTH_METRIC in rule["seriesQuery"] and OLDEST_WAIT_METRIC in rule["seriesQuery"]
    assert f"by ({QUEUE_LABEL})" in rule["metricsQuery"]
