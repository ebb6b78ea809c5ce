"""Pure builders: QueueWorkers + Settings in, plain Kubernetes object dicts out. No I/O, no clock.

`render(qws, settings)` is every object the operator applies for a set of QueueWorkers, in a stable
order: per namespace (sorted), the routes ConfigMap, the beat Deployment (when a schedule is enabled),
then per QueueWorker (by name) its worker Deployment, PodDisruptionBudget and autoscaler (keda/hpa).
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import groupby
from typing import Any

from queueworker.api.spec import FieldError, QueueWorker
from queueworker.builders import autoscaling
from queueworker.builders.autoscaling import autoscaler, horizontal_pod_autoscaler, scaled_object
from queueworker.builders.beat import beat_deployment
from queueworker.builders.common import CHECKSUM_ANNOTATION, worker_name
from queueworker.builders.routes import routes_configmap
from queueworker.builders.worker import pod_disruption_budget, worker_deployment
from queueworker.settings import Settings

__all__ = [
    "CHECKSUM_ANNOTATION",
    "autoscaler",
    "beat_deployment",
    "horizontal_pod_autoscaler",
    "namespace_objects",
    "pod_disruption_budget",
    "problems",
    "queueworker_objects",
    "render",
    "routes_configmap",
    "scaled_object",
    "worker_deployment",
    "worker_name",
]


def problems(qw: QueueWorker) -> list[FieldError]:
    """What a valid spec still cannot be built into (see autoscaling.problems); empty when buildable."""
    return autoscaling.problems(qw)


def queueworker_objects(qw: QueueWorker, settings: Settings) -> list[dict[str, Any]]:
    """The objects one QueueWorker owns: worker Deployment, PDB and, in mode keda/hpa, its autoscaler."""
    objects = [worker_deployment(qw, settings), pod_disruption_budget(qw, settings)]
    scaler = autoscaler(qw, settings)
    if scaler is not None:
        objects.append(scaler)
    return objects


def namespace_objects(qws: list[QueueWorker], settings: Settings) -> list[dict[str, Any]]:
    """The objects one namespace's QueueWorkers share: the routes ConfigMap and the beat Deployment."""
    built = (routes_configmap(qws, settings), beat_deployment(qws, settings))
    return [obj for obj in built if obj is not None]


def render(qws: Iterable[QueueWorker], settings: Settings) -> list[dict[str, Any]]:
    """Every object for `qws`, in a stable order (see the module docstring)."""
    ordered = sorted(qws, key=lambda q: (q.namespace, q.name))
    objects: list[dict[str, Any]] = []
    for _, group in groupby(ordered, key=lambda q: q.namespace):
        members = list(group)
        objects += namespace_objects(members, settings)
        for qw in members:
            objects += queueworker_objects(qw, settings)
    return objects
