"""The QueueWorker API (v1alpha1), field by field: the one table the CRD's schema (hack/crdgen.py writes
it), the spec model's parsing (api/walk.py, api/spec.py) and the field reference (docs/reference.md)
are made from. Add or change a field here, then run `make crds`.

Each field carries its type, default, bounds, pattern, enum and description, and, for the spec model's
messages, `what` (the expected form in words) and `hint` (what a missing required field should hold).
Rules across fields (api/rules.py) sit on the object they constrain. Fields of Kubernetes' own types
(resources, env, tolerations, affinity) and the schedule grammar are read by the `parse` they name.
"""

from __future__ import annotations

from dataclasses import replace

from queueworker.api import rules, values
from queueworker.api.checks import APP, DNS_LABEL, DNS_SUBDOMAIN, EVERY, INT32_MAX, NO_SPACE, QUEUE
from queueworker.api.podfields import AFFINITY, ENV, RESOURCES, TOLERATIONS
from queueworker.api.schema import ANY, ARRAY, BOOLEAN, INTEGER, NUMBER, OBJECT, STRING, Field
from queueworker.cron import CRON

DAY = 86400
DNS_LABEL_WHAT = "a DNS label (lowercase letters, digits and '-', alphanumeric at both ends)"
DNS_SUBDOMAIN_WHAT = "a DNS subdomain (lowercase letters, digits, '-' and '.', alphanumeric at both ends)"
QUEUE_WHAT = "a queue name (letters, digits, '_', '.', ':', '-'; starting with a letter or digit)"
CRON_WHAT = (
    "a five-field cron expression (minute 0-59, hour 0-23, day of month 1-31, month 1-12 or jan-dec, "
    "day of week 0-7 or sun-sat; each a list of *, N or N-M with an optional /step), e.g. '0 7 * * *'"
)
EVERY_WHAT = "a duration like '30s', '5m', '1h' or '1h30m' (units d, h, m, s in that order)"


def _int32(name: str, default: int | None, description: str, low: int = 0, high: int = INT32_MAX) -> Field:
    return Field(name, INTEGER, description, default=default, format="int32", minimum=low, maximum=high)


AUTOSCALING = Field(
    "autoscaling",
    OBJECT,
    "How the number of worker pods follows the queues.",
    rules=(rules.MIN_AT_MOST_MAX, rules.HPA_NEEDS_ONE),
    fields=(
        Field(
            "mode",
            STRING,
            "`builtin`: the operator scales on backlog and wait time; `keda`: a KEDA ScaledObject on the "
            "exported metrics; `hpa`: a HorizontalPodAutoscaler on an External metric; `off`: "
            'spec.replicas pods. Quote "off" in YAML, where a bare off is the boolean false.',
            default="builtin",
            enum=("builtin", "keda", "hpa", "off"),
        ),
        _int32("minReplicas", 1, "Fewest worker pods; 0 lets idle queues scale to zero (not with mode hpa)."),
        _int32("maxReplicas", 10, "Most worker pods; must be >= minReplicas.", low=1),
        Field(
            "targetWaitSeconds",
            NUMBER,
            "How long a task may wait in the queue before more workers are added.",
            default=30,
            minimum=0,
            exclusive_minimum=True,
            maximum=DAY,
        ),
        _int32(
            "scaleDownDelaySeconds",
            300,
            "How long the load must stay low before workers are removed.",
            high=DAY,
        ),
    ),
)
# Spelled out: the API server checks a default against the node's CEL rules as written, before nested
# defaults apply, so `{}` would fail them (no such key: minReplicas).
AUTOSCALING = replace(AUTOSCALING, default=AUTOSCALING.defaults())

SHUTDOWN = Field(
    "shutdown",
    OBJECT,
    "How workers stop.",
    fields=(
        _int32(
            "gracePeriodSeconds",
            300,
            "Time a stopping worker gets to finish its running tasks (the pod's "
            "terminationGracePeriodSeconds); set it above your longest task.",
            low=1,
            high=DAY,
        ),
    ),
)
SHUTDOWN = replace(SHUTDOWN, default=SHUTDOWN.defaults())

SCHEDULE = Field(
    "",
    OBJECT,
    rules=(rules.ONE_OF_CRON_EVERY, rules.CRON_FIRES, rules.EVERY_POSITIVE),
    fields=(
        Field(
            "name",
            STRING,
            "Unique name of the schedule (a DNS label).",
            required=True,
            min_length=1,
            max_length=63,
            pattern=DNS_LABEL.pattern,
            what=DNS_LABEL_WHAT,
            hint=DNS_LABEL_WHAT,
        ),
        Field(
            "task",
            STRING,
            "The Celery task name to send, e.g. `shop.tasks.email.digest`.",
            required=True,
            min_length=1,
            max_length=256,
            pattern=NO_SPACE.pattern,
            what="a Celery task name",
            hint="the Celery task name to send, e.g. shop.tasks.digest",
        ),
        Field(
            "cron",
            STRING,
            "When to send, as five cron fields in UTC (minute 0-59, hour 0-23, day of month 1-31, month "
            "1-12 or jan-dec, day of week 0-7 or sun-sat; `*`, `N`, `N-M`, lists and `/step`), e.g. "
            "`0 7 * * *`. When both day of month and day of week are restricted, both must match (Celery's "
            "rule; classic cron fires on either). Exactly one of cron or every.",
            min_length=1,
            max_length=128,
            pattern=CRON.pattern,
            what=CRON_WHAT,
            parse=values.read_cron,
        ),
        Field(
            "every",
            STRING,
            "Send at this interval: a duration with units d, h, m, s such as `30s`, `5m`, `1h` or "
            "`1h30m`; greater than zero. Exactly one of cron or every.",
            min_length=1,
            max_length=32,
            pattern=EVERY.pattern,
            what=EVERY_WHAT,
            parse=values.read_every,
        ),
        Field(
            "args",
            ARRAY,
            "Positional arguments of the task (JSON values).",
            max_items=64,
            list_type="atomic",
            items=Field("", ANY, preserve_unknown=True),
            parse=values.read_args,
        ),
        Field(
            "kwargs",
            OBJECT,
            "Keyword arguments of the task (JSON values).",
            max_properties=64,
            preserve_unknown=True,
            parse=values.read_kwargs,
        ),
        Field(
            "queue",
            STRING,
            "The queue to send to; one of spec.queues. Defaults to the first queue.",
            min_length=1,
            max_length=128,
            pattern=QUEUE.pattern,
            what=QUEUE_WHAT,
        ),
        Field("enabled", BOOLEAN, "Set false to pause the schedule without deleting it.", default=True),
    ),
)

SPEC = Field(
    "spec",
    OBJECT,
    "What to run and how to scale it.",
    required=True,
    rules=(rules.SCHEDULE_QUEUE,),
    fields=(
        Field(
            "app",
            STRING,
            "The Celery app, as `celery -A` takes it: a module path such as `shop.tasks` or "
            "`module:attribute` such as `shop.tasks:app`.",
            required=True,
            min_length=1,
            max_length=253,
            pattern=APP.pattern,
            what="a Celery app like 'pkg.module' or 'pkg.module:attr'",
            hint="the Celery app `celery -A` gets, e.g. shop.tasks:app",
        ),
        Field(
            "image",
            STRING,
            "The worker image (built FROM the QueueWorker worker image, or with the worker library "
            "installed). Defaults to the operator's configured worker image.",
            min_length=1,
            max_length=512,
            pattern=NO_SPACE.pattern,
            what="an image reference without spaces",
        ),
        Field(
            "queues",
            ARRAY,
            "The Celery queues the workers consume (`celery worker -Q`), 1 to 32 unique names. The first "
            "is the main queue: routes and schedules without a queue go there.",
            required=True,
            min_items=1,
            max_items=32,
            list_type="set",
            hint="the queues the workers consume, e.g. [emails]",
            items=Field("", STRING, min_length=1, max_length=128, pattern=QUEUE.pattern, what=QUEUE_WHAT),
        ),
        Field(
            "routes",
            ARRAY,
            "Task names or globs (`*`, e.g. `shop.tasks.email.*`) that producers route to the first "
            "queue; published in the routes ConfigMap that make_app apps read.",
            max_items=128,
            list_type="set",
            items=Field(
                "",
                STRING,
                min_length=1,
                max_length=256,
                pattern=NO_SPACE.pattern,
                what="a task name or glob without spaces",
            ),
        ),
        _int32(
            "concurrency", 2, "Worker processes or threads per pod (`celery worker --concurrency`).", 1, 1024
        ),
        Field(
            "pool",
            STRING,
            "The Celery execution pool (`celery worker --pool`).",
            default="prefork",
            enum=("prefork", "threads", "solo", "gevent", "eventlet"),
        ),
        _int32(
            "prefetchMultiplier",
            1,
            "Messages each process reserves ahead (`--prefetch-multiplier`); 1 suits long tasks, 0 means "
            "unlimited.",
            high=128,
        ),
        _int32(
            "maxTasksPerChild",
            0,
            "Replace a pool process after this many tasks (`--max-tasks-per-child`); 0 means never.",
        ),
        _int32(
            "replicas",
            1,
            "Worker pods when autoscaling.mode is off (also what `kubectl scale` sets through the scale "
            "subresource).",
        ),
        AUTOSCALING,
        SHUTDOWN,
        RESOURCES,
        ENV,
        Field(
            "nodeSelector",
            OBJECT,
            "Node labels a worker pod's node must have.",
            max_properties=64,
            values=Field("", STRING, max_length=63),
        ),
        TOLERATIONS,
        AFFINITY,
        Field(
            "serviceAccountName",
            STRING,
            "The ServiceAccount the worker pods run as.",
            min_length=1,
            max_length=253,
            pattern=DNS_SUBDOMAIN.pattern,
            what=DNS_SUBDOMAIN_WHAT,
        ),
        Field(
            "schedules",
            ARRAY,
            "Periodic tasks, sent by the one beat QueueWorker runs; each fires once per due time however "
            "many workers run.",
            max_items=64,
            list_type="map",
            map_keys=("name",),
            items=SCHEDULE,
            duplicate="duplicate schedule name {!r} (names must be unique)",
        ),
    ),
)


def _status_int(name: str, bits: int, description: str) -> Field:
    return Field(name, INTEGER, description, format=f"int{bits}")


def _time(name: str, description: str) -> Field:
    return Field(name, STRING, description, format="date-time")


STATUS = Field(
    "status",
    OBJECT,
    "What the operator observed; written by the operator only.",
    fields=(
        _status_int("observedGeneration", 64, "The metadata.generation this status describes."),
        _status_int("replicas", 32, "Worker pods that exist (the scale subresource's status.replicas)."),
        _status_int("readyReplicas", 32, "Worker pods that are ready."),
        _status_int("desiredReplicas", 32, "Worker pods the autoscaler wants."),
        Field(
            "selector",
            STRING,
            "Label selector of the worker pods (for the scale subresource).",
            max_length=1024,
        ),
        _status_int("backlog", 64, "Tasks waiting in the queues (all priority lists)."),
        _status_int("reserved", 64, "Tasks prefetched or running on workers (not yet acknowledged)."),
        Field("oldestWaitSeconds", NUMBER, "How long the oldest waiting task has waited, in seconds."),
        _time("lastScaleTime", "When the operator last changed the number of workers."),
        Field(
            "lastScaleReason", STRING, "Why the operator last changed the number of workers.", max_length=1024
        ),
        Field(
            "conditions",
            ARRAY,
            "Ready, Scaling, Degraded and InvalidSpec conditions (standard Kubernetes conditions).",
            max_items=16,
            list_type="map",
            map_keys=("type",),
            items=Field(
                "",
                OBJECT,
                fields=(
                    Field("type", STRING, "Condition type, e.g. Ready.", required=True, max_length=316),
                    Field(
                        "status",
                        STRING,
                        "True, False or Unknown.",
                        required=True,
                        enum=("True", "False", "Unknown"),
                    ),
                    Field("reason", STRING, "A CamelCase reason code.", max_length=1024),
                    Field("message", STRING, "A human readable explanation.", max_length=32768),
                    _time("lastTransitionTime", "When status last changed."),
                    Field(
                        "observedGeneration",
                        INTEGER,
                        "The metadata.generation the condition was set for.",
                        format="int64",
                        minimum=0,
                    ),
                ),
            ),
        ),
    ),
)

#: The whole object: the CRD's openAPIV3Schema is `QUEUEWORKER.schema()`.
QUEUEWORKER = Field(
    "",
    OBJECT,
    "QueueWorker runs Celery workers for one or more queues: a worker Deployment that scales on how long "
    "tasks wait, beat schedules, and the task routes producers use.",
    fields=(
        Field("apiVersion", STRING, "queueworker.dev/v1alpha1"),
        Field("kind", STRING, "QueueWorker"),
        Field("metadata", OBJECT),
        SPEC,
        STATUS,
    ),
)
