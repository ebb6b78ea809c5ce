"""The QueueWorker API (v1alpha1) as typed values: the one spec model used by the operator, `qw render`
and local mode. `parse_manifest` turns a manifest dict into a `QueueWorker` with every default filled in,
or raises `SpecError` listing every problem at once, each naming its field path and the fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from queueworker.api.checks import (
    DNS_LABEL,
    DNS_SUBDOMAIN,
    Checker,
    FieldError,
    SpecError,
    describe,
)
from queueworker.api.fields import AUTOSCALING, DNS_LABEL_WHAT, DNS_SUBDOMAIN_WHAT, SHUTDOWN, SPEC
from queueworker.api.schema import Field
from queueworker.api.walk import Values, read_object

__all__ = [
    "API_VERSION",
    "KIND",
    "MODES",
    "POOLS",
    "Autoscaling",
    "FieldError",
    "QueueWorker",
    "QueueWorkerSpec",
    "Schedule",
    "Shutdown",
    "SpecError",
    "parse_manifest",
    "parse_spec",
]

GROUP = "queueworker.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "QueueWorker"
PLURAL = "queueworkers"

POOLS = SPEC.child("pool").enum
MODES = AUTOSCALING.child("mode").enum

SPEC_FIELDS = tuple(sub.name for sub in SPEC.fields)
MAX_QUEUES = SPEC.child("queues").max_items
MAX_SCHEDULES = SPEC.child("schedules").max_items


def _default(node: Field, name: str) -> Any:
    """The table's default of `node`'s field `name`: the typed model's defaults are the CRD's."""
    return node.child(name).default


_SCHEDULE = SPEC.at("schedules[]")


@dataclass(frozen=True)
class Schedule:
    name: str
    task: str
    cron: str | None  # five-field cron expression, or None when `every` is used
    every: float | None  # seconds, parsed from "30s", "5m", "1h30m"; None when `cron` is used
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    queue: str = ""  # one of spec.queues; defaults to queues[0]
    enabled: bool = _default(_SCHEDULE, "enabled")


@dataclass(frozen=True)
class Autoscaling:
    mode: str = _default(AUTOSCALING, "mode")
    min_replicas: int = _default(AUTOSCALING, "minReplicas")
    max_replicas: int = _default(AUTOSCALING, "maxReplicas")
    target_wait_seconds: float = float(_default(AUTOSCALING, "targetWaitSeconds"))
    scale_down_delay_seconds: int = _default(AUTOSCALING, "scaleDownDelaySeconds")


@dataclass(frozen=True)
class Shutdown:
    grace_period_seconds: int = _default(SHUTDOWN, "gracePeriodSeconds")


@dataclass(frozen=True)
class QueueWorkerSpec:
    app: str
    queues: tuple[str, ...]
    image: str | None = None  # None: the operator's configured worker image
    routes: tuple[str, ...] = ()
    concurrency: int = _default(SPEC, "concurrency")
    pool: str = _default(SPEC, "pool")
    prefetch_multiplier: int = _default(SPEC, "prefetchMultiplier")
    max_tasks_per_child: int = _default(SPEC, "maxTasksPerChild")
    replicas: int = _default(SPEC, "replicas")
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
    check = Checker()
    try:
        parsed = _spec(check, spec, "spec")
    except RecursionError:  # a JSON value (args, kwargs, affinity, ...) nested past Python's recursion limit
        raise SpecError(
            [FieldError("spec", "nested too deeply: a value inside it has hundreds of levels")]
        ) from None
    if check.errors or parsed is None:
        raise SpecError(check.errors or [FieldError("spec", "required")])
    return parsed


def parse_manifest(obj: Mapping[str, Any], default_namespace: str = "default") -> QueueWorker:
    """Validate apiVersion, kind, metadata.name/namespace and the spec of one QueueWorker object."""
    check = Checker()
    allowed = ("apiVersion", "kind", "metadata", "spec", "status")
    if not isinstance(obj, Mapping):
        got = describe(obj)
        raise SpecError([FieldError("kind", f"must be a QueueWorker object (a mapping), got {got}")])
    top = check.fields(obj, "", allowed) or {}
    for key, want in (("apiVersion", API_VERSION), ("kind", KIND)):
        if key not in top:
            check.error(key, f"required ({key}: {want})")
        elif top[key] != want:
            check.error(key, f"must be {want}, got {describe(top[key])}")
    name, namespace, uid, generation, labels = _metadata(check, top.get("metadata"), default_namespace)
    try:
        spec = _spec(check, top.get("spec"), "spec")
    except RecursionError:  # a JSON value (args, kwargs, affinity, ...) nested past Python's recursion limit
        deep = FieldError("spec", "nested too deeply: a value inside it has hundreds of levels")
        raise SpecError([deep]) from None
    if check.errors or spec is None or name is None:
        raise SpecError(check.errors or [FieldError("spec", "required")])
    return QueueWorker(name, namespace, spec, uid, generation, labels)


def _metadata(
    check: Checker, raw: Any, default_namespace: str
) -> tuple[str | None, str, str | None, int | None, dict[str, str]]:
    meta = check.fields(raw if raw is not None else {}, "metadata", None) or {}
    if "name" not in meta:
        check.error("metadata.name", f"required: {DNS_SUBDOMAIN_WHAT}")
    name = check.string(
        meta, "name", "metadata", pattern=DNS_SUBDOMAIN, max_length=253, what=DNS_SUBDOMAIN_WHAT
    )
    namespace = check.string(
        meta, "namespace", "metadata", pattern=DNS_LABEL, max_length=63, what=DNS_LABEL_WHAT
    )
    uid = meta.get("uid") if isinstance(meta.get("uid"), str) else None
    generation = check.integer(meta, "generation", "metadata", 0) if "generation" in meta else None
    labels = check.string_map(meta, "labels", "metadata", max_items=1024, max_length=63)
    return name, namespace or default_namespace, uid, generation, labels


def _spec(check: Checker, raw: Any, path: str) -> QueueWorkerSpec | None:
    if raw is None:
        check.error(path, "required: at least spec.app and spec.queues")
        return None
    v = read_object(check, raw, path, SPEC)
    if v is None or check.errors:  # the caller reports them; every value below is valid
        return None
    queues = tuple(v.get("queues", ()))
    grace = (v.get("shutdown") or {}).get("gracePeriodSeconds")
    return QueueWorkerSpec(
        app=v.get("app", ""),
        queues=queues,
        image=v.get("image"),
        routes=tuple(v.get("routes", ())),
        concurrency=v["concurrency"],
        pool=v["pool"],
        prefetch_multiplier=v["prefetchMultiplier"],
        max_tasks_per_child=v["maxTasksPerChild"],
        replicas=v["replicas"],
        autoscaling=_autoscaling(v.get("autoscaling") or {}),
        shutdown=Shutdown(**({"grace_period_seconds": grace} if grace is not None else {})),
        resources=v.get("resources") or {},
        env=tuple(v.get("env", ())),
        node_selector=v.get("nodeSelector") or {},
        tolerations=tuple(v.get("tolerations", ())),
        affinity=v.get("affinity") or {},
        service_account_name=v.get("serviceAccountName"),
        schedules=tuple(_schedule(s, queues[0] if queues else "") for s in v.get("schedules", ())),
    )


def _autoscaling(v: Values) -> Autoscaling:
    base = Autoscaling()
    return Autoscaling(
        mode=v.get("mode", base.mode),
        min_replicas=v.get("minReplicas", base.min_replicas),
        max_replicas=v.get("maxReplicas", base.max_replicas),
        target_wait_seconds=float(v.get("targetWaitSeconds", base.target_wait_seconds)),
        scale_down_delay_seconds=v.get("scaleDownDelaySeconds", base.scale_down_delay_seconds),
    )


def _schedule(v: Values, default_queue: str) -> Schedule:
    return Schedule(
        name=v.get("name", ""),
        task=v.get("task", ""),
        cron=v.get("cron"),
        every=v.get("every"),
        args=tuple(v.get("args", ())),
        kwargs=v.get("kwargs", {}),
        queue=v.get("queue") or default_queue,
        enabled=v.get("enabled", True),
    )
