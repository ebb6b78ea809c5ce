"""The per-namespace beat Deployment: one celery beat on the Redis-backed RedBeat scheduler (its lock
keeps a second beat from firing), for the enabled schedules of every QueueWorker in the namespace.
The schedule entries themselves are synced into Redis by the operator; the pod template carries their
checksum so a changed schedule restarts beat."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from queueworker import contract
from queueworker.api.spec import QueueWorker
from queueworker.builders.common import (
    CHECKSUM_ANNOTATION,
    broker_ca_mount,
    broker_ca_volume,
    broker_env,
    checksum,
    container_security_context,
    metadata,
    pod_security_context,
    sentinel_env,
    shared_refs,
)
from queueworker.builders.labels import labels, selector
from queueworker.settings import Settings

BEAT_RESOURCES = {
    "requests": {"cpu": "50m", "memory": "128Mi"},
    "limits": {"memory": "256Mi"},
}


def scheduling(qws: Sequence[QueueWorker]) -> list[QueueWorker]:
    """The QueueWorkers with at least one enabled schedule, by name."""
    return sorted((qw for qw in qws if any(s.enabled for s in qw.spec.schedules)), key=lambda q: q.name)


def schedules_summary(qws: Sequence[QueueWorker]) -> list[dict[str, Any]]:
    """Every enabled schedule in the namespace, as plain data (what the beat checksum covers)."""
    return [
        {
            "queueworker": f"{qw.namespace}/{qw.name}",
            "name": s.name,
            "task": s.task,
            "cron": s.cron,
            "every": s.every,
            "args": list(s.args),
            "kwargs": dict(s.kwargs),
            "queue": s.queue,
        }
        for qw in scheduling(qws)
        for s in qw.spec.schedules
        if s.enabled
    ]


def beat_deployment(qws: Sequence[QueueWorker], settings: Settings) -> dict[str, Any] | None:
    """The beat Deployment for one namespace's QueueWorkers, or None when no schedule is enabled."""
    owners = scheduling(qws)
    if not owners:
        return None
    namespaces = {qw.namespace for qw in qws}
    if len(namespaces) != 1:
        raise ValueError(f"beat_deployment takes one namespace's QueueWorkers, got {sorted(namespaces)}")
    name = settings.beat_name
    container: dict[str, Any] = {
        "name": "beat",
        "image": settings.default_image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["celery"],
        "args": contract.beat_args(),
        "env": [broker_env(settings), *sentinel_env(settings)],
        "resources": copy.deepcopy(BEAT_RESOURCES),
        "securityContext": container_security_context(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, broker_ca_mount()],  # noqa: S108
    }
    pod: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security_context(),
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {}}, broker_ca_volume(settings)],
    }
    pod_labels = labels(name, "beat")
    annotations = {CHECKSUM_ANNOTATION: checksum({"pod": pod, "schedules": schedules_summary(owners)})}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(name, owners[0].namespace, pod_labels, shared_refs(owners)),
        "spec": {
            "replicas": 1,
            "revisionHistoryLimit": 3,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector(name, "beat")},
            "template": {"metadata": {"labels": pod_labels, "annotations": annotations}, "spec": pod},
        },
    }
