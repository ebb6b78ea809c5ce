"""What the operator and local mode must agree on, written once: the `celery worker` command line and
the QueueWorker settings in its environment, the `celery beat` command line, the soft-shutdown budget,
the `queueworker:targets` hash and its upkeep, which worker holds which messages, and how secrets are
kept out of text. The operator's builders and autoscaler and local mode's commands and control loop call
these; each side adds only its own wiring (a pod's Secret reference and mounts; a local process's
interpreter, health file's directory and free port).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from queueworker.broker import keys

if TYPE_CHECKING:
    from queueworker.api.spec import QueueWorker


def soft_shutdown_seconds(grace_period: int) -> int:
    """Time running tasks get after SIGTERM before the worker cancels and requeues them
    (QUEUEWORKER_SOFT_SHUTDOWN_TIMEOUT): the grace period minus a margin of 10 %, 1..30 s, left for
    Celery to requeue and exit before the SIGKILL. 0 (no bound) for a 1 s grace period."""
    margin = min(30, max(1, grace_period // 10))
    return max(grace_period - margin, 0)


def worker_args(qw: QueueWorker, hostname: str, log_level: str = "INFO") -> list[str]:
    """`celery` arguments of one worker of `qw`: `-A app worker -Q queues` and the spec's settings."""
    spec = qw.spec
    args = [
        "-A", spec.app,
        "worker",
        "-Q", ",".join(spec.queues),
        "--concurrency", str(spec.concurrency),
        "--pool", spec.pool,
        "--prefetch-multiplier", str(spec.prefetch_multiplier),
        "--hostname", hostname,
        "--loglevel", log_level.upper(),
        "--without-gossip",
        "--without-mingle",
    ]  # fmt: skip
    if spec.max_tasks_per_child > 0:
        args += ["--max-tasks-per-child", str(spec.max_tasks_per_child)]
    return args


#: The beat process's app (its scheduler is also set there) and scheduler: celery-redbeat's, surviving a
#: broker failover (queueworker.beat.scheduler).
BEAT_APP = "queueworker.beat.app:app"
BEAT_SCHEDULER = "queueworker.beat.scheduler:Scheduler"


def beat_args(log_level: str = "INFO") -> list[str]:
    """`celery` arguments of the one beat: the QueueWorker beat app on the Redis-backed scheduler."""
    return ["-A", BEAT_APP, "beat", "--scheduler", BEAT_SCHEDULER, "--loglevel", log_level.upper()]


def worker_env(qw: QueueWorker, *, metrics_port: int, routes_file: str) -> dict[str, str]:
    """The QueueWorker settings of a worker's environment (the broker URL is each side's own: a Secret
    reference in a pod, a literal locally). The spec's `env` entries come after these and replace any
    of the same name."""
    budget = soft_shutdown_seconds(qw.spec.shutdown.grace_period_seconds)
    return {
        "QUEUEWORKER_METRICS_PORT": str(metrics_port),
        "QUEUEWORKER_ROUTES_FILE": routes_file,
        "QUEUEWORKER_SOFT_SHUTDOWN_TIMEOUT": str(budget),
    }


def targets(qws: Iterable[QueueWorker]) -> dict[str, str]:
    """`queueworker:targets` fields: queue -> JSON {targetWaitSeconds, queueworker}. When QueueWorkers
    share a queue, the first by (namespace, name) wins: the same answer whatever order they are read in."""
    out: dict[str, str] = {}
    for qw in sorted(qws, key=lambda q: (q.namespace, q.name)):
        for queue in qw.spec.queues:
            out.setdefault(
                queue,
                json.dumps(
                    {
                        "targetWaitSeconds": qw.spec.autoscaling.target_wait_seconds,
                        "queueworker": f"{qw.namespace}/{qw.name}",
                    },
                    sort_keys=True,
                ),
            )
    return out


class TargetsClient(Protocol):
    """What `sync_targets` needs of a Redis client (redis.Redis has it)."""

    def hgetall(self, name: str) -> Any: ...
    def pipeline(self, transaction: bool = ...) -> Any: ...


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _decoded(raw: Mapping[Any, Any]) -> dict[str, str]:
    """A hash as read from Redis, as text; fields or values that are not UTF-8 are skipped."""
    out: dict[str, str] = {}
    for field, value in raw.items():
        try:
            out[_text(field)] = _text(value)
        except UnicodeDecodeError:
            continue
    return out


def sync_targets(client: TargetsClient, qws: Iterable[QueueWorker], namespaces: Collection[str]) -> None:
    """Make `queueworker:targets` say what `targets(qws)` says, in one read and at most one write: fields
    that differ are written, and stale ones removed: a queue none of `qws` has whose owner
    ("namespace/name") is in `namespaces`, the namespaces the writer serves (the operator: those that had
    QueueWorkers during its run; local mode: those of its QueueWorkers). Other writers' entries, and
    unreadable ones, stay."""
    wanted = targets(qws)
    current = _decoded(client.hgetall(keys.TARGETS_HASH))
    stale = []
    for queue, raw in current.items():
        try:
            owner = str(json.loads(raw).get("queueworker", ""))
        except (ValueError, AttributeError):
            continue
        if queue not in wanted and owner.split("/", 1)[0] in namespaces:
            stale.append(queue)
    changed: dict[Any, Any] = {q: v for q, v in wanted.items() if current.get(q) != v}
    if changed or stale:
        pipe = client.pipeline(transaction=False)
        if changed:
            pipe.hset(keys.TARGETS_HASH, mapping=changed)
        if stale:
            pipe.hdel(keys.TARGETS_HASH, *stale)
        pipe.execute()


class HashReader(Protocol):
    def hgetall(self, name: str) -> Any: ...


def held_records(client: HashReader) -> dict[str, str]:
    """Every held record (delivery tag -> "hostname\nlist"), as the atomic fetch writes them in
    `queueworker:held` in the same operation that pops a message. One HGETALL; unreadable ones skipped."""
    return _decoded(client.hgetall(keys.HELD_HASH))


def count_held(records: Mapping[str, str], queues: Iterable[str]) -> dict[str, int]:
    """Messages each worker (Celery hostname) holds from `queues` (their base and priority lists) in
    `records` (held_records): tasks running or prefetched, with no heartbeat's delay."""
    lists = {name for queue in queues for name in keys.queue_lists(queue)}
    held: dict[str, int] = {}
    for record in records.values():
        host, sep, source = record.partition("\n")
        if sep and host and source in lists:
            held[host] = held.get(host, 0) + 1
    return held


def held_by_worker(client: HashReader, queues: Iterable[str]) -> dict[str, int]:
    """count_held over a fresh read of the held records."""
    return count_held(held_records(client), queues)


_URL = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^/?#\s'\"<>]*)")


def _mask(match: re.Match[str]) -> str:
    scheme, netloc = match.group(1), match.group(2)
    userinfo, at, host = netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return match.group(0)
    user = userinfo.split(":", 1)[0]
    return f"{scheme}{user}:***@{host}"


def redact(text: str, secret_url: str | None = None) -> str:
    """`text` (a URL, a log line, an error message) without passwords: every `scheme://user:password@`
    shows `***` for the password, and the password of `secret_url`, wherever it appears, too."""
    from urllib.parse import urlsplit

    out = _URL.sub(_mask, text)
    try:
        password = urlsplit(secret_url).password if secret_url else None
    except ValueError:
        password = None
    return out.replace(password, "***") if password else out


def env_items(env: Mapping[str, str]) -> list[dict[str, Any]]:
    """Name/value pairs as a container's `env` list."""
    return [{"name": name, "value": value} for name, value in env.items()]
