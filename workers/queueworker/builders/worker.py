"""The worker Deployment and its PodDisruptionBudget for one QueueWorker."""

from __future__ import annotations

from typing import Any

from queueworker import contract
from queueworker.api.spec import QueueWorker
from queueworker.builders.common import (
    CHECKSUM_ANNOTATION,
    ROUTES_FILE,
    ROUTES_KEY,
    ROUTES_MOUNT,
    broker_ca_mount,
    broker_ca_volume,
    broker_env,
    checksum,
    container_security_context,
    controller_ref,
    metadata,
    plain,
    pod_security_context,
    sentinel_env,
    worker_labels,
    worker_name,
)
from queueworker.builders.labels import selector
from queueworker.settings import Settings

METRICS_PORT_NAME = "metrics"
MULTIPROC_DIR = "/tmp/prometheus-multiproc"  # noqa: S108 - an emptyDir mount, not a shared /tmp
CONTAINER_NAME = "worker"

#: Liveness is consumption-based (`qw probe liveness`), so a long task never fails it; the thresholds
#: only bound how long a wedged worker lingers. The startup probe gives slow imports five minutes.
LIVENESS = {"periodSeconds": 30, "timeoutSeconds": 10, "failureThreshold": 4, "successThreshold": 1}
READINESS = {"periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 3, "successThreshold": 1}
STARTUP = {"periodSeconds": 5, "timeoutSeconds": 10, "failureThreshold": 60, "successThreshold": 1}


def container_env(qw: QueueWorker, settings: Settings) -> list[dict[str, Any]]:
    """The worker container's env list: the broker URL from the Secret, the worker settings every worker
    gets (queueworker.contract.worker_env, local mode's too), the pod's metrics directory; then the spec's
    entries."""
    ours = contract.worker_env(qw, metrics_port=settings.worker_metrics_port, routes_file=ROUTES_FILE)
    env: list[dict[str, Any]] = [
        broker_env(settings),
        *sentinel_env(settings),
        *contract.env_items(ours),
        {"name": "PROMETHEUS_MULTIPROC_DIR", "value": MULTIPROC_DIR},
    ]
    # The user's entries come last and replace ours of the same name (a duplicate name would make
    # the env list ambiguous, and server-side apply rejects it); of repeated user names the last wins.
    user: dict[str, dict[str, Any]] = {}
    for item in qw.spec.env:
        user.pop(str(item.get("name")), None)
        user[str(item.get("name"))] = plain(item)
    return [item for item in env if item["name"] not in user] + list(user.values())


def _probe(kind: str, timing: dict[str, int]) -> dict[str, Any]:
    return {"exec": {"command": ["qw", "probe", kind]}, **timing}


def pod_template(qw: QueueWorker, settings: Settings) -> dict[str, Any]:
    """The pod template, checksum annotation included."""
    spec = qw.spec
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": spec.image or settings.default_image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["celery"],
        "args": contract.worker_args(qw, f"{qw.name}@%h"),
        "env": container_env(qw, settings),
        "ports": [
            {"name": METRICS_PORT_NAME, "containerPort": settings.worker_metrics_port, "protocol": "TCP"}
        ],
        "startupProbe": _probe("liveness", STARTUP),
        "livenessProbe": _probe("liveness", LIVENESS),
        "readinessProbe": _probe("readiness", READINESS),
        "securityContext": container_security_context(),
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108
            {"name": "prometheus-multiproc", "mountPath": MULTIPROC_DIR},
            {"name": "routes", "mountPath": ROUTES_MOUNT, "readOnly": True},
            broker_ca_mount(),
        ],
    }
    if spec.resources:
        container["resources"] = plain(spec.resources)
    pod: dict[str, Any] = {
        "automountServiceAccountToken": spec.service_account_name is not None,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": spec.shutdown.grace_period_seconds,
        "securityContext": pod_security_context(),
        "containers": [container],
        "volumes": [
            {"name": "tmp", "emptyDir": {}},
            # prometheus-client's per-process files are mmapped and written on every task: keep them in memory
            {"name": "prometheus-multiproc", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
            {
                "name": "routes",
                "configMap": {
                    "name": settings.routes_configmap,
                    "optional": True,
                    "items": [{"key": ROUTES_KEY, "path": ROUTES_KEY}],
                },
            },
            broker_ca_volume(settings),
        ],
    }
    if spec.service_account_name is not None:
        pod["serviceAccountName"] = spec.service_account_name
    if spec.node_selector:
        pod["nodeSelector"] = plain(spec.node_selector)
    if spec.tolerations:
        pod["tolerations"] = plain(spec.tolerations)
    if spec.affinity:
        pod["affinity"] = plain(spec.affinity)
    pod_meta: dict[str, Any] = {"labels": worker_labels(qw)}
    pod_meta["annotations"] = {CHECKSUM_ANNOTATION: checksum({"metadata": pod_meta, "spec": pod})}
    return {"metadata": pod_meta, "spec": pod}


def desired_replicas(qw: QueueWorker) -> int | None:
    """Initial `spec.replicas`: spec.replicas (off), minReplicas (builtin: the operator then owns it),
    None for keda/hpa (their controller owns it, so it is left out of the object)."""
    mode = qw.spec.autoscaling.mode
    if mode == "off":
        return qw.spec.replicas
    if mode == "builtin":
        return qw.spec.autoscaling.min_replicas
    return None


def worker_deployment(qw: QueueWorker, settings: Settings) -> dict[str, Any]:
    name = worker_name(qw)
    deploy_spec: dict[str, Any] = {}
    replicas = desired_replicas(qw)
    if replicas is not None:
        deploy_spec["replicas"] = replicas
    deploy_spec.update(
        {
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": selector(qw.name, "worker")},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
            "template": pod_template(qw, settings),
        }
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(name, qw.namespace, worker_labels(qw), controller_ref(qw)),
        "spec": deploy_spec,
    }


def pod_disruption_budget(qw: QueueWorker, settings: Settings) -> dict[str, Any]:
    """At most one worker pod of this QueueWorker evicted at a time (drains, node upgrades)."""
    del settings  # same signature as every other per-QueueWorker builder
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(worker_name(qw), qw.namespace, worker_labels(qw), controller_ref(qw)),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector(qw.name, "worker")}},
    }
