"""`qw exporter`: queue metrics for Prometheus, one read of the queue stats per scrape.

Metric names are the contract in docs/internals.md: celery-exporter's `celery_queue_length` where the
meaning matches (the full depth, priority lists included), `queueworker_*` for the rest. When Redis
cannot be read, a scrape answers `queueworker_broker_up 0` and no queue series at all: a queue that
could not be read never shows as empty. The Redis URL (it may carry a password) is only ever logged
with the password replaced.
"""

from __future__ import annotations

import functools
import gzip
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import compress
from operator import attrgetter
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.backoff import NoBackoff
from redis.retry import Retry

from queueworker.broker.client import connect
from queueworker.broker.stats import QueueStats, queue_stats

log = logging.getLogger("queueworker.exporter")

DEFAULT_PORT = 9808
#: Seconds to connect to / wait on Redis before a scrape reports the broker down (Prometheus' default
#: scrape timeout is 10 s).
REDIS_TIMEOUT = 3.0
LABEL = "queue_name"
TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class Family:
    """One per-queue metric: its exposed sample name, type, help, and the QueueStats attribute it shows
    (None: no sample for that queue; a bool shows as 0 or 1)."""

    name: str
    kind: str
    help: str
    attr: str = ""

    def value(self, stats: QueueStats) -> int | float | None:
        value: int | float | None = getattr(stats, self.attr)
        return int(value) if isinstance(value, bool) else value


QUEUE_FAMILIES: tuple[Family, ...] = (
    Family(
        "celery_queue_length", "gauge", "Messages waiting in the queue, priority lists included.", "depth"
    ),
    Family(
        "queueworker_queue_reserved",
        "gauge",
        "Messages delivered to a worker (prefetched or running) and not acknowledged yet.",
        "reserved",
    ),
    Family(
        "queueworker_queue_workers", "gauge", "Workers with a live heartbeat consuming the queue.", "workers"
    ),
    Family(
        "queueworker_queue_busy_slots", "gauge", "Worker slots running a task, from heartbeats.", "busy_slots"
    ),
    Family(
        "queueworker_queue_total_slots",
        "gauge",
        "Worker slots consuming the queue, from heartbeats.",
        "total_slots",
    ),
    Family(
        "queueworker_queue_oldest_wait_seconds",
        "gauge",
        "Seconds the oldest waiting message has waited since it was published (0 when none waits; "
        "absent when the oldest messages carry no publish stamp).",
        "oldest_wait",
    ),
    Family(
        "queueworker_queue_orphaned",
        "gauge",
        "1 when messages wait and no live worker consumes the queue.",
        "orphaned",
    ),
    Family(
        "queueworker_queue_completed_total",
        "counter",
        "Tasks of the queue finished by workers, from their heartbeats.",
        "completed_total",
    ),
    Family(
        "queueworker_queue_target_wait_seconds",
        "gauge",
        "Wait target of the QueueWorker serving the queue.",
        "target_wait",
    ),
)
BROKER_UP = Family(
    "queueworker_broker_up",
    "gauge",
    "1 when this scrape read Redis, 0 when it could not (no queue series then).",
)
SCRAPE_DURATION = Family(
    "queueworker_scrape_duration_seconds",
    "gauge",
    "Seconds the exporter spent reading the queue stats from Redis for this scrape.",
)


@dataclass(frozen=True)
class Scrape:
    """One read of the queue stats as the exporter sees it: stats, or None when Redis could not be read."""

    stats: dict[str, QueueStats] | None
    duration: float


def redis_client(url: str, timeout: float = REDIS_TIMEOUT) -> redis.Redis:
    """A client that fails fast (one retry, no backoff) so a dead broker shows in the same scrape."""
    return connect(
        url,
        timeout=timeout,
        retry=Retry(NoBackoff(), 1),
        health_check_interval=30,
    )


class QueueCollector(Collector):
    """Probes Redis at each collect() (prometheus-client API) or scrape() (the exporter's fast path)."""

    def __init__(
        self,
        client: redis.Redis,
        queues: Sequence[str] = (),
        discover: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.queues = tuple(queues)
        self.discover = discover
        self.clock = clock
        self._broker_up: bool | None = None
        self._lock = threading.Lock()

    def describe(self) -> Iterable[Metric]:
        return []  # no read at registration time

    def scrape(self) -> Scrape:
        started = time.perf_counter()
        stats: dict[str, QueueStats] | None
        try:
            stats = queue_stats(self.client, self.queues, discover=self.discover, now=self.clock())
        except redis.RedisError as exc:
            stats = None
            self._note(False, exc)
        else:
            self._note(True, None)
        return Scrape(stats, time.perf_counter() - started)

    def collect(self) -> Iterator[Metric]:
        result = self.scrape()
        if result.stats is not None:
            yield from queue_families(result.stats.values())
        up = GaugeMetricFamily(BROKER_UP.name, BROKER_UP.help)
        up.add_metric([], 1.0 if result.stats is not None else 0.0)
        yield up
        duration = GaugeMetricFamily(SCRAPE_DURATION.name, SCRAPE_DURATION.help)
        duration.add_metric([], result.duration)
        yield duration

    def _note(self, up: bool, exc: Exception | None) -> None:
        with self._lock:
            changed, self._broker_up = self._broker_up != up, up
        if not changed:
            return
        if up:
            log.info("broker reachable: reading the stats of %s", self._what())
            return
        # A server's error message says what is wrong (an old Redis without script flags, a key of
        # the wrong type); client-side errors are named only: the class says enough, and says no secret.
        detail = (
            f"{type(exc).__name__}: {str(exc)[:200]}"
            if isinstance(exc, redis.ResponseError)
            else type(exc).__name__
        )
        log.warning(
            "broker unreachable or unreadable (%s): reporting queueworker_broker_up 0 and no queue series",
            detail,
        )

    def _what(self) -> str:
        named = f"{len(self.queues)} named queue(s)"
        return named + (" and discovered queues" if self.discover else "")


def queue_families(stats: Iterable[QueueStats]) -> list[Metric]:
    """The per-queue metric families for queue stats (prometheus-client objects)."""
    families: list[tuple[Metric, Family]] = []
    for family in QUEUE_FAMILIES:
        if family.kind == "counter":
            name = family.name.removesuffix("_total")
            metric: Metric = CounterMetricFamily(name, family.help, labels=[LABEL])
        else:
            metric = GaugeMetricFamily(family.name, family.help, labels=[LABEL])
        families.append((metric, family))
    for s in stats:
        labels = [s.queue]
        for metric, family in families:
            value = family.value(s)
            if value is not None:
                metric.add_metric(labels, float(value))  # type: ignore[attr-defined]
    return [metric for metric, _ in families]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _header(family: Family) -> str:
    return f"# HELP {family.name} {family.help}\n# TYPE {family.name} {family.kind}\n"


@functools.lru_cache(maxsize=2)
def _labels(queues: tuple[str, ...]) -> list[str]:
    """The label set of each queue as exposed, kept for the next scrape (queues rarely change)."""
    return [f'{{{LABEL}="{_escape(queue)}"}} ' for queue in queues]


def render(result: Scrape) -> str:
    """The text exposition (format 0.0.4) of a scrape, written directly: at 10,000 queues
    prometheus-client's generic writer takes seconds, this a few milliseconds. Each sample line is
    four pieces (name, cached label set, value, newline) laid out by slice assignment and joined once,
    so no Python code runs per sample."""
    parts: list[str] = []
    if result.stats is not None:
        stats = list(result.stats.values())
        all_labels = _labels(tuple(result.stats))
        for family in QUEUE_FAMILIES:
            parts.append(_header(family))
            values: list[Any] = list(map(attrgetter(family.attr), stats))
            labels = all_labels
            if None in values:  # no sample for those queues
                present = [value is not None for value in values]
                values, labels = list(compress(values, present)), list(compress(labels, present))
            if family.attr == "orphaned":
                values = list(map(int, values))
            lines = [family.name, "", "", "\n"] * len(values)
            lines[1::4] = labels
            lines[2::4] = map(repr, values)
            parts += lines
    parts.append(f"{_header(BROKER_UP)}{BROKER_UP.name} {int(result.stats is not None)}\n")
    parts.append(f"{_header(SCRAPE_DURATION)}{SCRAPE_DURATION.name} {result.duration!r}\n")
    return "".join(parts)


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def wsgi_app(collector: QueueCollector) -> Callable[..., Any]:
    """/metrics (and /) reads the queue stats and answers the exposition (gzip when asked); /healthz answers
    without touching Redis; anything else is a 404 (a stray request costs no read of Redis)."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO")
        if path == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok\n"]
        if path not in ("/metrics", "/"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found: try /metrics or /healthz\n"]
        body = render(collector.scrape()).encode()
        headers = [("Content-Type", TEXT_CONTENT_TYPE)]
        if "gzip" in environ.get("HTTP_ACCEPT_ENCODING", ""):
            body = gzip.compress(body, compresslevel=1)
            headers.append(("Content-Encoding", "gzip"))
        headers.append(("Content-Length", str(len(body))))
        start_response("200 OK", headers)
        return [body]

    return app


class Exporter:
    """The HTTP server of `qw exporter`: start(), then stop() (or serve_forever() until stop())."""

    def __init__(
        self,
        redis_url: str,
        queues: Sequence[str] = (),
        discover: bool = False,
        port: int = DEFAULT_PORT,
        address: str = "0.0.0.0",
    ) -> None:
        self.collector = QueueCollector(redis_client(redis_url), queues, discover)
        self.server = make_server(address, port, wsgi_app(self.collector), _Server, _QuietHandler)
        self.port = int(self.server.server_port)
        self._thread: threading.Thread | None = None

    def start(self) -> Exporter:
        self._thread = threading.Thread(target=self.server.serve_forever, name="qw-exporter", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.collector.client.close()
        if self._thread is not None:
            self._thread.join(timeout=5)
