"""The autoscaler object of a QueueWorker in mode keda (a KEDA ScaledObject) or hpa (an autoscaling/v2
HorizontalPodAutoscaler on External metrics). Modes builtin and off have none: the operator's own
policy, or nobody, sets the replicas.

Both scale on the exporter's queue metrics (docs/internals.md "Metrics"): the oldest task's wait
against targetWaitSeconds, and the tasks waiting or reserved per `concurrency` slots of a pod.
"""

from __future__ import annotations

import math
from typing import Any

from queueworker.api.spec import FieldError, QueueWorker
from queueworker.builders.common import controller_ref, metadata, number_text, worker_labels, worker_name
from queueworker.builders.labels import is_label_value
from queueworker.settings import Settings

OLDEST_WAIT_METRIC = "queueworker_queue_oldest_wait_seconds"
LENGTH_METRIC = "celery_queue_length"
RESERVED_METRIC = "queueworker_queue_reserved"
QUEUE_LABEL = "queue_name"

#: The API server's upper bound for an HPA stabilization window.
MAX_STABILIZATION_SECONDS = 3600


def problems(qw: QueueWorker) -> list[FieldError]:
    """What this module cannot build for `qw`: in mode hpa each queue name goes into a label selector,
    so it must also be a valid label value (no ':', at most 63 characters)."""
    if qw.spec.autoscaling.mode != "hpa":
        return []
    return [
        FieldError(
            f"spec.queues[{i}]",
            f"{queue!r} cannot be selected by an HPA metric (label values allow only letters, digits,"
            " '-', '_', '.', at most 63): rename the queue or use autoscaling.mode keda or builtin",
        )
        for i, queue in enumerate(qw.spec.queues)
        if not is_label_value(queue)
    ]


def _behavior(qw: QueueWorker) -> dict[str, Any]:
    """Scale up at once, scale down only after scaleDownDelaySeconds of lower recommendations."""
    window = min(qw.spec.autoscaling.scale_down_delay_seconds, MAX_STABILIZATION_SECONDS)
    return {
        "scaleUp": {
            "stabilizationWindowSeconds": 0,
            "selectPolicy": "Max",
            "policies": [
                {"type": "Percent", "value": 100, "periodSeconds": 15},
                {"type": "Pods", "value": 4, "periodSeconds": 15},
            ],
        },
        "scaleDown": {
            "stabilizationWindowSeconds": window,
            "selectPolicy": "Max",
            "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
        },
    }


def _target_ref(qw: QueueWorker) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "name": worker_name(qw)}


def queue_matcher(queues: tuple[str, ...]) -> str:
    """A PromQL label matcher selecting exactly these queues: `queue_name=~"a|b\\\\.c"`."""
    escaped = [q.replace(".", "\\\\.") for q in queues]  # the only regex metacharacter queue names allow
    return f'{QUEUE_LABEL}=~"{"|".join(escaped)}"'


def prometheus_queries(qw: QueueWorker) -> dict[str, str]:
    """The two PromQL queries KEDA polls; each yields one sample, 0 when the series are absent."""
    match = queue_matcher(qw.spec.queues)
    return {
        "oldest-wait": f"max({OLDEST_WAIT_METRIC}{{{match}}}) or vector(0)",
        "tasks": (
            f"(sum({LENGTH_METRIC}{{{match}}}) or vector(0))"
            f" + (sum({RESERVED_METRIC}{{{match}}}) or vector(0))"
        ),
    }


def scaled_object(qw: QueueWorker, settings: Settings) -> dict[str, Any]:
    auto = qw.spec.autoscaling
    queries = prometheus_queries(qw)
    triggers = [
        {
            # Proportional: the wait at twice the target asks for twice the pods.
            "type": "prometheus",
            "name": "oldest-wait",
            "metricType": "Value",
            "metadata": {
                "serverAddress": settings.prometheus_url,
                "query": queries["oldest-wait"],
                "threshold": number_text(auto.target_wait_seconds),
                "activationThreshold": "0",
            },
        },
        {
            # One pod per `concurrency` tasks waiting or reserved.
            "type": "prometheus",
            "name": "tasks",
            "metricType": "AverageValue",
            "metadata": {
                "serverAddress": settings.prometheus_url,
                "query": queries["tasks"],
                "threshold": str(qw.spec.concurrency),
                "activationThreshold": "0",
            },
        },
    ]
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": metadata(worker_name(qw), qw.namespace, worker_labels(qw), controller_ref(qw)),
        "spec": {
            "scaleTargetRef": _target_ref(qw),
            "minReplicaCount": auto.min_replicas,
            "maxReplicaCount": auto.max_replicas,
            "cooldownPeriod": auto.scale_down_delay_seconds,
            "pollingInterval": max(1, math.ceil(settings.autoscale_interval)),
            "advanced": {"horizontalPodAutoscalerConfig": {"behavior": _behavior(qw)}},
            "triggers": triggers,
        },
    }


def horizontal_pod_autoscaler(qw: QueueWorker, settings: Settings) -> dict[str, Any]:
    """An HPA on External metrics served by a Prometheus adapter, one pair per queue (the HPA takes
    the largest recommendation). minReplicas is at least 1: autoscaling/v2 cannot scale to zero."""
    del settings
    auto = qw.spec.autoscaling
    metrics: list[dict[str, Any]] = []
    for queue in qw.spec.queues:
        if not is_label_value(queue):
            continue  # see problems(): rejected before anything is applied
        metrics.append(
            {
                "type": "External",
                "external": {
                    "metric": {"name": OLDEST_WAIT_METRIC, "selector": {"matchLabels": {QUEUE_LABEL: queue}}},
                    "target": {"type": "Value", "value": number_text(auto.target_wait_seconds)},
                },
            }
        )
        metrics.append(
            {
                "type": "External",
                "external": {
                    "metric": {"name": LENGTH_METRIC, "selector": {"matchLabels": {QUEUE_LABEL: queue}}},
                    "target": {"type": "AverageValue", "averageValue": str(qw.spec.concurrency)},
                },
            }
        )
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(worker_name(qw), qw.namespace, worker_labels(qw), controller_ref(qw)),
        "spec": {
            "scaleTargetRef": _target_ref(qw),
            "minReplicas": max(1, auto.min_replicas),
            "maxReplicas": max(1, auto.max_replicas),
            "metrics": metrics,
            "behavior": _behavior(qw),
        },
    }


def autoscaler(qw: QueueWorker, settings: Settings) -> dict[str, Any] | None:
    """The ScaledObject (keda), the HPA (hpa), or None (builtin, off)."""
    mode = qw.spec.autoscaling.mode
    if mode == "keda":
        return scaled_object(qw, settings)
    if mode == "hpa":
        return horizontal_pod_autoscaler(qw, settings)
    return None
