"""The Prometheus Operator and the Prometheus it runs, namespace `monitoring`, from the binaries hack/addons
builds. The CRDs and the operator's ClusterRole are the Prometheus Operator's own (read from its module);
the rest is written here.

The Prometheus selects every ServiceMonitor, PodMonitor and PrometheusRule in every namespace, as
kube-prometheus-stack users configure it (`*SelectorNilUsesHelmValues: false`), and the operator makes
its `prometheus-operated` Service (port `web`, 9090): what the chart's `keda.prometheusUrl` names."""

from __future__ import annotations

from typing import Any

from hack.cluster import objects as o
from hack.cluster import upstream

NAMESPACE = "monitoring"
OPERATOR = "prometheus-operator"
PROMETHEUS = "k8s"  # the StatefulSet is prometheus-k8s
PROMETHEUS_ACCOUNT = "prometheus"
#: The release hack/addons builds (module v0.305.0): the newest the operator v0.85 lists as compatible.
PROMETHEUS_VERSION = "v3.5.0"
#: How often targets are scraped and rules evaluated: short, so the e2e suite sees changes quickly.
INTERVAL = "5s"


def crds() -> list[dict[str, Any]]:
    return upstream.crds("prometheus-operator", upstream.PROMETHEUS_OPERATOR_CRDS)


def _operator() -> list[dict[str, Any]]:
    args = [
        f"--prometheus-config-reloader={o.image('prometheus-config-reloader')}",
        "--web.listen-address=:8080",
        "--log-level=info",
    ]
    main = o.container(
        OPERATOR, o.image(OPERATOR), args, {"http": 8080}, probe=o.http_probe("http", "/healthz")
    )
    return [
        o.service_account(OPERATOR, NAMESPACE),
        upstream.cluster_role("prometheus-operator", upstream.PROMETHEUS_OPERATOR_ROLE, OPERATOR),
        o.binding(OPERATOR, OPERATOR, OPERATOR, NAMESPACE),
        o.deployment(OPERATOR, NAMESPACE, OPERATOR, [main], {}),
        o.service(OPERATOR, NAMESPACE, {"http": (8080, 8080)}),
    ]


def _prometheus() -> list[dict[str, Any]]:
    read = ["get", "list", "watch"]
    rules = [
        {
            "apiGroups": [""],
            "resources": ["services", "endpoints", "pods", "nodes", "nodes/metrics"],
            "verbs": read,
        },
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": read},
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]},
        {"nonResourceURLs": ["/metrics"], "verbs": ["get"]},
    ]
    everywhere: dict[str, Any] = {}
    spec = {
        "image": o.image("prometheus"),
        "version": PROMETHEUS_VERSION,
        "replicas": 1,
        "serviceAccountName": PROMETHEUS_ACCOUNT,
        "scrapeInterval": INTERVAL,
        "evaluationInterval": INTERVAL,
        "retention": "6h",
        "serviceMonitorSelector": everywhere,
        "serviceMonitorNamespaceSelector": everywhere,
        "podMonitorSelector": everywhere,
        "podMonitorNamespaceSelector": everywhere,
        "ruleSelector": everywhere,
        "ruleNamespaceSelector": everywhere,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 65534,
            "runAsGroup": 65534,
            "fsGroup": 65534,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "1Gi"}},
    }
    return [
        o.service_account(PROMETHEUS_ACCOUNT, NAMESPACE),
        o.cluster_role("queueworker-local-prometheus", rules),
        o.binding(
            "queueworker-local-prometheus", "queueworker-local-prometheus", PROMETHEUS_ACCOUNT, NAMESPACE
        ),
        {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "Prometheus",
            "metadata": {"name": PROMETHEUS, "namespace": NAMESPACE},
            "spec": spec,
        },
    ]


def objects() -> list[dict[str, Any]]:
    """The operator's objects; prometheus() follows once its CRDs are established."""
    ns = o.namespace(NAMESPACE)
    ns["metadata"]["labels"] = {"pod-security.kubernetes.io/enforce": "restricted"}
    return [ns, *_operator()]


def prometheus() -> list[dict[str, Any]]:
    return _prometheus()


def prometheus_api(path: str) -> str:
    """The API server's service-proxy path to the Prometheus HTTP API."""
    return f"/api/v1/namespaces/{NAMESPACE}/services/prometheus-operated:web/proxy/api/v1/{path}"
