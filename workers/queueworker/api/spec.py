"""The QueueWorker API (v1alpha1) as typed values: the one spec model used by the operator, `qw render`
and local mode. `parse_manifest` turns a manifest dict into a `QueueWorker` with every default filled in,
or raises `SpecError` listing every problem at once, each naming its field path and the fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from queueworker.api.checks import (
    APP,
    DNS_LABEL,
    DNS_SUBDOMAIN,
    NO_SPACE,
    QUEUE,
    Checker,
    FieldError,
    SpecError,
    describe,
    duration_seconds,
    is_json,
    join,
)
from queueworker.api.pod import parse_affinity, parse_env, parse_resources, parse_tolerations
from queueworker.cron import cron_never_fires, cron_problem

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

POOLS = ("prefork", "threads", "solo", "gevent", "eventlet")
MODES = ("builtin", "keda", "hpa", "off")

SPEC_FIELDS = (
    "app", "image", "queues", "routes", "concurrency", "pool", "prefetchMultiplier", "maxTasksPerChild",
    "replicas", "autoscaling", "shutdown", "resources", "env", "nodeSelector", "tolerations", "affinity",
    "serviceAccountName", "schedules",
)  # fmt: skip
MAX_QUEUES = 32
MAX_SCHEDULES = 64
DAY = 86400


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


DNS_LABEL_WHAT = "a DNS label (lowercase letters, digits and '-', alphanumeric at both ends)"
DNS_SUBDOMAIN_WHAT = "a DNS subdomain (lowercase letters, digits, '-' and '.', alphanumeric at both ends)"
QUEUE_WHAT = "a queue name (letters, digits, '_', '.', ':', '-'; starting with a letter or digit)"
CRON_WHAT = (
    "a five-field cron expression (minute 0-59, hour 0-23, day of month 1-31, month 1-12 or jan-dec, "
    "day of week 0-7 or sun-sat; each a list of *, N or N-M with an optional /step), e.g. '0 7 * * *'"
)
EVERY_WHAT = "a duration like '30s', '5m', '1h' or '1h30m' (units d, h, m, s in that order)"


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
    required = {
        "app": "the Celery app `celery -A` gets, e.g. shop.tasks:app",
        "queues": "the queues the workers consume, e.g. [emails]",
    }
    d = check.fields(raw, path, SPEC_FIELDS, required=required)
    if d is None:
        return None
    base = QueueWorkerSpec(app="", queues=())
    app = check.string(
        d,
        "app",
        path,
        pattern=APP,
        max_length=253,
        what="a Celery app like 'pkg.module' or 'pkg.module:attr'",
    )
    before = len(check.errors)
    queues = check.string_set(
        d, "queues", path, pattern=QUEUE, max_length=128, what=QUEUE_WHAT, max_items=MAX_QUEUES, min_items=1
    )
    known_queues = queues if len(check.errors) == before else ()  # check schedules against valid queues only
    image = check.string(
        d, "image", path, pattern=NO_SPACE, max_length=512, what="an image reference without spaces"
    )
    routes = check.string_set(
        d,
        "routes",
        path,
        pattern=NO_SPACE,
        max_length=256,
        what="a task name or glob without spaces",
        max_items=128,
    )
    account = check.string(
        d, "serviceAccountName", path, pattern=DNS_SUBDOMAIN, max_length=253, what=DNS_SUBDOMAIN_WHAT
    )
    return QueueWorkerSpec(
        app=app or "",
        queues=queues,
        image=image,
        routes=routes,
        concurrency=check.integer(d, "concurrency", path, base.concurrency, minimum=1, maximum=1024),
        pool=check.enum(d, "pool", path, choices=POOLS, default=base.pool),
        prefetch_multiplier=check.integer(
            d, "prefetchMultiplier", path, base.prefetch_multiplier, minimum=0, maximum=128
        ),
        max_tasks_per_child=check.integer(d, "maxTasksPerChild", path, base.max_tasks_per_child),
        replicas=check.integer(d, "replicas", path, base.replicas),
        autoscaling=_autoscaling(check, d.get("autoscaling"), join(path, "autoscaling")),
        shutdown=_shutdown(check, d.get("shutdown"), join(path, "shutdown")),
        resources=parse_resources(check, d.get("resources"), join(path, "resources")),
        env=parse_env(check, d.get("env"), join(path, "env")),
        node_selector=check.string_map(d, "nodeSelector", path, max_items=64, max_length=63),
        tolerations=parse_tolerations(check, d.get("tolerations"), join(path, "tolerations")),
        affinity=parse_affinity(check, d.get("affinity"), join(path, "affinity")),
        service_account_name=account,
        schedules=_schedules(check, d.get("schedules"), join(path, "schedules"), known_queues),
    )


def _autoscaling(check: Checker, raw: Any, path: str) -> Autoscaling:
    base = Autoscaling()
    allowed = ("mode", "minReplicas", "maxReplicas", "targetWaitSeconds", "scaleDownDelaySeconds")
    d = check.fields(raw if raw is not None else {}, path, allowed)
    if d is None:
        return base
    mode = check.enum(d, "mode", path, choices=MODES, default=base.mode)
    before = len(check.errors)
    low = check.integer(d, "minReplicas", path, base.min_replicas)
    high = check.integer(d, "maxReplicas", path, base.max_replicas, minimum=1)
    if len(check.errors) == before and low > high:  # compare only values valid on their own
        check.error(join(path, "minReplicas"), f"must be <= maxReplicas ({low} > {high})")
    if mode == "hpa" and low < 1:
        check.error(
            join(path, "minReplicas"),
            "must be >= 1 when mode is hpa (a HorizontalPodAutoscaler cannot scale to zero; "
            "use mode builtin or keda to scale to zero)",
        )
    wait = check.number(d, "targetWaitSeconds", path, base.target_wait_seconds, above=0, maximum=DAY)
    delay = check.integer(d, "scaleDownDelaySeconds", path, base.scale_down_delay_seconds, maximum=DAY)
    return Autoscaling(mode, low, high, wait, delay)


def _shutdown(check: Checker, raw: Any, path: str) -> Shutdown:
    base = Shutdown()
    d = check.fields(raw if raw is not None else {}, path, ("gracePeriodSeconds",))
    if d is None:
        return base
    grace = check.integer(d, "gracePeriodSeconds", path, base.grace_period_seconds, minimum=1, maximum=DAY)
    return Shutdown(grace)


SCHEDULE_FIELDS = ("name", "task", "cron", "every", "args", "kwargs", "queue", "enabled")


def _schedules(check: Checker, raw: Any, path: str, queues: tuple[str, ...]) -> tuple[Schedule, ...]:
    if raw is None:
        return ()
    out: list[Schedule] = []
    names: set[str] = set()
    for i, item in enumerate(check.items(raw, path, MAX_SCHEDULES)):
        where = f"{path}[{i}]"
        required = {"name": DNS_LABEL_WHAT, "task": "the Celery task name to send, e.g. shop.tasks.digest"}
        d = check.fields(item, where, SCHEDULE_FIELDS, required=required)
        if d is None:
            continue
        name = check.string(d, "name", where, pattern=DNS_LABEL, max_length=63, what=DNS_LABEL_WHAT)
        if name is not None and name in names:
            check.error(join(where, "name"), f"duplicate schedule name {name!r} (names must be unique)")
        names.add(name or "")
        task = check.string(d, "task", where, pattern=NO_SPACE, max_length=256, what="a Celery task name")
        cron, every = _when(check, d, where)
        args = check.items(d["args"], join(where, "args"), 64) if "args" in d else []
        if not is_json(args):
            check.error(join(where, "args"), "must hold only JSON values (quote dates and timestamps)")
        kwargs: dict[str, Any] = {}
        if "kwargs" in d and check.fields(d["kwargs"], join(where, "kwargs"), None) is not None:
            kwargs = dict(d["kwargs"])
            if len(kwargs) > 64:
                check.error(join(where, "kwargs"), f"must have at most 64 entries, got {len(kwargs)}")
            elif not is_json(kwargs):
                check.error(join(where, "kwargs"), "must hold only JSON values (quote dates and timestamps)")
        queue = check.string(d, "queue", where, pattern=QUEUE, max_length=128, what=QUEUE_WHAT)
        if queue is not None and queues and queue not in queues:
            check.error(
                join(where, "queue"), f"must be one of spec.queues ({', '.join(queues)}); got {queue!r}"
            )
        enabled = check.boolean(d, "enabled", where, True)
        default_queue = queues[0] if queues else ""
        out.append(
            Schedule(
                name or "", task or "", cron, every, tuple(args), kwargs, queue or default_queue, enabled
            )
        )
    return tuple(out)


def _when(check: Checker, d: Mapping[str, Any], where: str) -> tuple[str | None, float | None]:
    """The schedule's `cron` expression and `every` interval (seconds): exactly one of them is set."""
    if ("cron" in d) == ("every" in d):
        check.error(where, "set exactly one of cron (e.g. '0 7 * * *') or every (e.g. '30s', '1h30m')")
    cron = check.string(d, "cron", where, pattern=None, max_length=128, what=CRON_WHAT)
    problem = cron_problem(cron) if cron is not None else None
    if problem is not None:
        check.error(join(where, "cron"), f"{problem}; got {cron!r}, e.g. '0 7 * * *' (daily at 07:00)")
        cron = None
    elif cron is not None and cron_never_fires(cron):
        check.error(
            join(where, "cron"), f"never fires: its days of month occur in none of its months; got {cron!r}"
        )
        cron = None
    text = check.string(d, "every", where, pattern=None, max_length=32, what=EVERY_WHAT)
    if text is None:
        return cron, None
    seconds = duration_seconds(text)
    if seconds is None:
        check.error(join(where, "every"), f"must be {EVERY_WHAT}; got {text!r}")
    elif seconds <= 0:
        check.error(join(where, "every"), f"must be greater than zero, got {text!r}")
        seconds = None
    return cron, seconds
