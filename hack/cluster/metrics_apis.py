"""The metrics APIs of the local cluster: metrics-server (`metrics.k8s.io`: `kubectl top`, CPU and memory
HPAs) and prometheus-adapter (`external.metrics.k8s.io` from the Prometheus Operator's Prometheus, for
QueueWorkers in `mode: hpa`).

A cluster has one External-metrics API: the `v1beta1.external.metrics.k8s.io` APIService names one
server. KEDA's metrics API server serves only its ScaledObjects' metrics, and prometheus-adapter only
Prometheus series, so a cluster runs `mode: keda` or `mode: hpa` QueueWorkers, not both at once.
`external_metrics(provider)` says which: KEDA by default, the adapter on request
(`python -m hack.cluster external-metrics adapter`)."""

from __future__ import annotations

from typing import Any, Literal

import yaml

from hack.cluster import keda
from hack.cluster import objects as o
from hack.cluster.certs import Certs
from hack.cluster.monitoring import NAMESPACE as MONITORING

Provider = Literal["keda", "adapter"]
ADAPTER = "prometheus-adapter"
METRICS_SERVER = "metrics-server"
PROMETHEUS_URL = f"http://prometheus-operated.{MONITORING}.svc:9090/"
#: The queue series the exporter publishes that `mode: hpa` HPAs select by queue_name; one value per
#: queue (max over exporter replicas), wherever the QueueWorker's namespace is.
QUEUE_SERIES = ("celery_queue_length", "queueworker_queue_oldest_wait_seconds", "queueworker_queue_reserved")
ADAPTER_CONFIG = {
    "externalRules": [
        {
            "seriesQuery": f'{{__name__=~"{"|".join(QUEUE_SERIES)}",queue_name!=""}}',
            "resources": {"namespaced": False},
            "metricsQuery": "max(<<.Series>>{<<.LabelMatchers>>}) by (queue_name)",
        }
    ]
}


def _adapter(certs: Certs) -> list[dict[str, Any]]:
    args = [
        "--secure-port=6443",
        "--tls-cert-file=/certs/tls.crt",
        "--tls-private-key-file=/certs/tls.key",
        f"--prometheus-url={PROMETHEUS_URL}",
        "--config=/etc/adapter/config.yaml",
        "--metrics-relist-interval=10s",
        "--cert-dir=/tmp",
        "--v=1",
    ]
    main = o.container(
        ADAPTER,
        o.image(ADAPTER),
        args,
        {"https": 6443},
        probe=o.https_probe("https"),
        mounts={"certificates": "/certs", "config": "/etc/adapter", "tmp": "/tmp"},  # noqa: S108
    )
    volumes: dict[str, o.Obj] = {
        "certificates": {"secret": {"secretName": f"{ADAPTER}-tls"}},
        "config": {"configMap": {"name": ADAPTER}},
        "tmp": {"emptyDir": {}},
    }
    read = ["get", "list", "watch"]
    return [
        o.service_account(ADAPTER, MONITORING),
        o.cluster_role(
            ADAPTER,
            [{"apiGroups": [""], "resources": ["namespaces", "pods", "services", "nodes"], "verbs": read}],
        ),
        o.binding(ADAPTER, ADAPTER, ADAPTER, MONITORING),
        *o.extension_apiserver_access(ADAPTER, ADAPTER, MONITORING),
        o.tls_secret(f"{ADAPTER}-tls", MONITORING, certs.ca.cert, certs.adapter.cert, certs.adapter.key),
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": ADAPTER, "namespace": MONITORING},
            "data": {"config.yaml": yaml.safe_dump(ADAPTER_CONFIG, sort_keys=False)},
        },
        o.deployment(ADAPTER, MONITORING, ADAPTER, [main], volumes),
        o.service(ADAPTER, MONITORING, {"https": (443, 6443)}),
    ]


def _metrics_server(certs: Certs) -> list[dict[str, Any]]:
    ns = "kube-system"
    args = [
        "--secure-port=10250",
        "--cert-dir=/tmp",
        "--tls-cert-file=/certs/tls.crt",
        "--tls-private-key-file=/certs/tls.key",
        "--kubelet-preferred-address-types=InternalIP",
        "--kubelet-use-node-status-port",
        # The kubelet's serving certificate is signed by the cluster CA, which every namespace's
        # kube-root-ca.crt ConfigMap carries: verified, not skipped.
        "--kubelet-certificate-authority=/ca/ca.crt",
        "--metric-resolution=15s",
    ]
    main = o.container(
        METRICS_SERVER,
        o.image(METRICS_SERVER),
        args,
        {"https": 10250},
        probe=o.https_probe("https"),
        mounts={"certificates": "/certs", "ca": "/ca", "tmp": "/tmp"},  # noqa: S108
    )
    volumes: dict[str, o.Obj] = {
        "certificates": {"secret": {"secretName": f"{METRICS_SERVER}-tls"}},
        "ca": {"configMap": {"name": "kube-root-ca.crt"}},
        "tmp": {"emptyDir": {}},
    }
    reader = o.cluster_role(
        "metrics-server-aggregated-reader",
        [
            {
                "apiGroups": ["metrics.k8s.io"],
                "resources": ["pods", "nodes"],
                "verbs": ["get", "list", "watch"],
            }
        ],
    )
    reader["metadata"]["labels"] = {
        f"rbac.authorization.k8s.io/aggregate-to-{role}": "true" for role in ("view", "edit", "admin")
    }
    return [
        o.service_account(METRICS_SERVER, ns),
        reader,
        o.cluster_role(
            METRICS_SERVER,
            [
                {"apiGroups": [""], "resources": ["nodes/metrics"], "verbs": ["get"]},
                {"apiGroups": [""], "resources": ["pods", "nodes"], "verbs": ["get", "list", "watch"]},
            ],
        ),
        o.binding(METRICS_SERVER, METRICS_SERVER, METRICS_SERVER, ns),
        *o.extension_apiserver_access(METRICS_SERVER, METRICS_SERVER, ns),
        o.tls_secret(
            f"{METRICS_SERVER}-tls", ns, certs.ca.cert, certs.metrics_server.cert, certs.metrics_server.key
        ),
        o.deployment(METRICS_SERVER, ns, METRICS_SERVER, [main], volumes),
        o.service(METRICS_SERVER, ns, {"https": (443, 10250)}),
        o.api_service("metrics.k8s.io", "v1beta1", METRICS_SERVER, ns, certs.ca.cert),
    ]


def objects(certs: Certs) -> list[dict[str, Any]]:
    return [*_adapter(certs), *_metrics_server(certs)]


def external_metrics(provider: Provider, certs: Certs) -> dict[str, Any]:
    """The External-metrics APIService, served by KEDA or by the adapter."""
    if provider == "keda":
        return o.api_service(
            "external.metrics.k8s.io", "v1beta1", keda.METRICS, keda.NAMESPACE, certs.ca.cert
        )
    return o.api_service("external.metrics.k8s.io", "v1beta1", ADAPTER, MONITORING, certs.ca.cert)


def deployments() -> list[str]:
    return [f"{MONITORING}/{ADAPTER}", f"kube-system/{METRICS_SERVER}"]
