"""KEDA in the local cluster, namespace `keda`: its operator (scalers, the HPAs of ScaledObjects), its
External-metrics API server and its admission webhooks, from the binaries hack/addons builds. The CRDs
and the operator's ClusterRole are KEDA's own (read from its module); the rest is written here.

Certificates are made here (hack.cluster.certs), not by KEDA's own rotation: the API server trusts the
metrics API server and the webhooks through their CA, and the External-metrics APIService can be handed
to prometheus-adapter and back (hack.cluster.metrics_apis) without KEDA patching it behind our back."""

from __future__ import annotations

from typing import Any

from hack.cluster import objects as o
from hack.cluster import upstream
from hack.cluster.certs import Certs

NAMESPACE = "keda"
ACCOUNT = "keda-operator"
CERTS_SECRET = "kedaorg-certs"  # noqa: S105 (a Secret's name: the one KEDA's binaries read by default)
OPERATOR, METRICS, WEBHOOKS = "keda-operator", "keda-metrics-apiserver", "keda-admission-webhooks"
SERVICES = (OPERATOR, METRICS, WEBHOOKS)


def _certs_volume() -> dict[str, Any]:
    return {"secret": {"secretName": CERTS_SECRET, "defaultMode": 0o444}}


def _operator() -> list[dict[str, Any]]:
    env = {
        "POD_NAMESPACE": {"fieldRef": {"fieldPath": "metadata.namespace"}},
        "WATCH_NAMESPACE": "",
    }
    args = [
        "--zap-log-level=info",
        "--zap-encoder=console",
        "--enable-cert-rotation=false",
        "--enable-webhook-patching=false",
        "--enable-apiservice-patching=false",
    ]
    ports = {"metricsservice": 9666, "metrics": 8080, "health": 8081}
    main = o.container(
        OPERATOR,
        o.image(OPERATOR),
        args,
        ports,
        probe=o.http_probe("health", "/readyz"),
        mounts={"certificates": "/certs", "tmp": "/tmp"},  # noqa: S108 (an emptyDir)
        env=env,
        memory="512Mi",
    )
    return [
        o.deployment(
            OPERATOR, NAMESPACE, ACCOUNT, [main], {"certificates": _certs_volume(), "tmp": {"emptyDir": {}}}
        ),
        o.service(OPERATOR, NAMESPACE, {"metricsservice": (9666, 9666), "metrics": (8080, 8080)}),
    ]


def _metrics_apiserver() -> list[dict[str, Any]]:
    env = {"POD_NAMESPACE": {"fieldRef": {"fieldPath": "metadata.namespace"}}, "WATCH_NAMESPACE": ""}
    args = [
        "--secure-port=6443",
        "--cert-dir=/certs",
        "--tls-cert-file=/certs/tls.crt",
        "--tls-private-key-file=/certs/tls.key",
        "--client-ca-file=/certs/ca.crt",
        f"--metrics-service-address={OPERATOR}.{NAMESPACE}.svc.cluster.local:9666",
        "--zap-log-level=error",
    ]
    main = o.container(
        METRICS,
        o.image("keda-adapter"),
        args,
        {"https": 6443, "metrics": 8080},
        probe=o.https_probe("https"),
        mounts={"certificates": "/certs", "tmp": "/tmp"},  # noqa: S108 (an emptyDir)
        env=env,
    )
    return [
        o.deployment(
            METRICS, NAMESPACE, ACCOUNT, [main], {"certificates": _certs_volume(), "tmp": {"emptyDir": {}}}
        ),
        o.service(METRICS, NAMESPACE, {"https": (443, 6443), "metrics": (8080, 8080)}),
    ]


def _webhooks(certs: Certs) -> list[dict[str, Any]]:
    env = {"POD_NAMESPACE": {"fieldRef": {"fieldPath": "metadata.namespace"}}}
    main = o.container(
        WEBHOOKS,
        o.image("keda-webhooks"),
        ["--zap-log-level=info", "--cert-dir=/certs", "--port=9443"],
        {"https": 9443, "metrics": 8080, "health": 8081},
        probe=o.http_probe("health", "/readyz"),
        mounts={"certificates": "/certs"},
        env=env,
    )
    hook = {
        "name": "vscaledobject.kb.io",
        "admissionReviewVersions": ["v1"],
        "clientConfig": {
            "service": {
                "name": WEBHOOKS,
                "namespace": NAMESPACE,
                "path": "/validate-keda-sh-v1alpha1-scaledobject",
            },
            "caBundle": o.b64(certs.ca.cert.read_bytes()),
        },
        # As KEDA ships it: a webhook that is down admits rather than blocks.
        "failurePolicy": "Ignore",
        "sideEffects": "None",
        "timeoutSeconds": 10,
        "rules": [
            {
                "apiGroups": ["keda.sh"],
                "apiVersions": ["v1alpha1"],
                "operations": ["CREATE", "UPDATE"],
                "resources": ["scaledobjects"],
            }
        ],
    }
    return [
        o.deployment(WEBHOOKS, NAMESPACE, ACCOUNT, [main], {"certificates": _certs_volume()}),
        o.service(WEBHOOKS, NAMESPACE, {"https": (443, 9443)}),
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "keda-admission"},
            "webhooks": [hook],
        },
    ]


def crds() -> list[dict[str, Any]]:
    return upstream.crds("keda", upstream.KEDA_CRDS)


def objects(certs: Certs) -> list[dict[str, Any]]:
    """Everything but the CRDs (applied first, so the API knows them) and the APIService."""
    pair = certs.keda
    return [
        {
            **o.namespace(NAMESPACE),
            "metadata": {"name": NAMESPACE, "labels": {"pod-security.kubernetes.io/enforce": "restricted"}},
        },
        o.service_account(ACCOUNT, NAMESPACE),
        upstream.cluster_role("keda", upstream.KEDA_OPERATOR_ROLE, "keda-operator"),
        o.binding("keda-operator", "keda-operator", ACCOUNT, NAMESPACE),
        *o.extension_apiserver_access("keda-metrics-apiserver", ACCOUNT, NAMESPACE),
        o.tls_secret(CERTS_SECRET, NAMESPACE, certs.ca.cert, pair.cert, pair.key),
        *_operator(),
        *_metrics_apiserver(),
        *_webhooks(certs),
    ]


def deployments() -> list[str]:
    return [f"{NAMESPACE}/{name}" for name in SERVICES]
