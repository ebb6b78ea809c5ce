"""The QueueWorker API (v1alpha1) as typed values: the one spec model used by the operator, `qw render`
and local mode. `parse_manifest` turns a manifest dict into a `QueueWorker` with every default filled in,
or raises `SpecError` listing every problem at once, each naming its field path and the fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

GROUP = "queueworker.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "QueueWorker"
PLURAL = "queueworkers"

POOLS = ("prefork", "threads", "solo", "gevent", "eventlet")
MODES = ("builtin", "keda", "hpa", "off")


@dataclass(frozen=True)
class FieldError:
    path: str  # e.g. "spec.autoscaling.minReplicas"
    message: str  # e.g. "must be <= maxReplicas (5 > 2)"

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class SpecError(ValueError):
    """Every problem found in one manifest."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors))


@dataclass(frozen=True)
class Schedule:
    name: str
    task: str
    cron: str | None  # five-field cron expression, or None when `every` is used
    every: float | None  # seconds, parsed from "30s", "5m", "1h30m"; None when `cron` is used
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    queue: str = ""  # one of spec.queues; defaults to queues[0]
    enabled: bool = True


@dataclass(frozen=True)
class Autoscaling:
    mode: str = "builtin"
    min_replicas: int = 1
    max_replicas: int = 10
    target_wait_seconds: float = 30.0
    scale_down_delay_seconds: int = 300


@dataclass(frozen=True)
class Shutdown:
    grace_period_seconds: int = 300


@dataclass(frozen=True)
class QueueWorkerSpec:
    app: str
    queues: tuple[str, ...]
    image: str | None = None  # None: the operator's configured worker image
    routes: tuple[str, ...] = ()
    concurrency: int = 2
    pool: str = "prefork"
    prefetch_multiplier: int = 1
    max_tasks_per_child: int = 0
    replicas: int = 1
    autoscaling: Autoscaling = field(default_factory=Autoscaling)
    shutdown: Shutdown = field(default_factory=Shutdown)
    resources: Mapping[str, Any] = field(default_factory=dict)
    env: tuple[Mapping[str, Any], ...] = ()
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()
    affinity: Mapping[str, Any] = field(default_factory=dict)
    service_account_name: str | None = None
    schedules: tuple[Schedule, ...] = ()


@dataclass(frozen=True)
class QueueWorker:
    name: str
    namespace: str
    spec: QueueWorkerSpec
    uid: str | None = None
    generation: int | None = None
    labels: Mapping[str, str] = field(default_factory=dict)


def parse_spec(spec: Mapping[str, Any]) -> QueueWorkerSpec:
    """Validate and default a QueueWorker `.spec`; raise SpecError with every problem at once."""
    raise NotImplementedError


def parse_manifest(obj: Mapping[str, Any], default_namespace: str = "default") -> QueueWorker:
    """Validate apiVersion, kind, metadata.name/namespace and the spec of one QueueWorker object."""
    raise NotImplementedError
