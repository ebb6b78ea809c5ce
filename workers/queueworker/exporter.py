"""`qw exporter`: queue metrics for Prometheus, one probe of Redis per scrape.

Metric names are the contract in docs/internals.md: celery-exporter's `celery_queue_length` where the
meaning matches (the full depth, priority lists included), `queueworker_*` for the rest. When Redis
cannot be read, a scrape answers `queueworker_broker_up 0` and no queue series at all: a queue that
could not be read never shows as empty. The Redis URL (it may carry a password) is never logged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import make_wsgi_app
from prometheus_client.registry import Collector, CollectorRegistry
from redis.backoff import NoBackoff
from redis.retry import Retry

from queueworker.probe import QueueStats, probe

log = logging.getLogger("queueworker.exporter")

DEFAULT_PORT = 9808
#: Seconds to connect to / wait on Redis before a scrape reports the broker down (Prometheus' default
#: scrape timeout is 10 s).
REDIS_TIMEOUT = 3.0
LABEL = "queue_name"

#: (name, help, QueueStats attribute) of the per-queue gauges.
_GAUGES: tuple[tuple[str, str, str], ...] = (
    ("celery_queue_length", "Messages waiting in the queue, priority lists included.", "depth"),
    ("queueworker_queue_reserved",
     "Messages delivered to a worker (prefetched or running) and not acknowledged yet.", "reserved"),
    ("queueworker_queue_workers", "Workers with a live heartbeat consuming the queue.", "workers"),
    ("queueworker_queue_busy_slots", "Worker slots running a task, from heartbeats.", "busy_slots"),
    ("queueworker_queue_total_slots", "Worker slots consuming the queue, from heartbeats.", "total_slots"),
)


def redact(url: str) -> str:
    """The URL with its password replaced by ***, for log lines."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable url>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def redis_client(url: str, timeout: float = REDIS_TIMEOUT) -> redis.Redis:
    """A client that fails fast (one retry, no backoff) so a dead broker shows in the same scrape."""
    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                retry=Retry(NoBackoff(), 1), health_check_interval=30)


class QueueCollector(Collector):
    """Probes Redis at each collect() and yields the queue metric families."""

    def __init__(self, client: redis.Redis, queues: Sequence[str] = (), discover: bool = False,
                 clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.queues = tuple(queues)
        self.discover = discover
        self.clock = clock
        self._broker_up: bool | None = None
        self._lock = threading.Lock()

    def describe(self) -> Iterable[Metric]:
        return []  # no probe at registration time

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        stats: dict[str, QueueStats] | None
        try:
            stats = probe(self.client, self.queues, discover=self.discover, now=self.clock())
        except redis.RedisError as exc:
            stats = None
            self._note(False, exc)
        else:
            self._note(True, None)
        if stats is not None:
            yield from queue_families(stats.values())
        up = GaugeMetricFamily("queueworker_broker_up",
                               "1 when this scrape read Redis, 0 when it could not (no queue series then).")
        up.add_metric([], 1.0 if stats is not None else 0.0)
        yield up
        duration = GaugeMetricFamily("queueworker_scrape_duration_seconds",
                                     "Seconds the exporter spent probing Redis for this scrape.")
        duration.add_metric([], time.perf_counter() - started)
        yield duration

    def _note(self, up: bool, exc: Exception | None) -> None:
        with self._lock:
            changed, self._broker_up = self._broker_up != up, up
        if not changed:
            return
        if up:
            log.info("broker reachable: probing %s", self._what())
        else:
            log.warning("broker unreachable (%s): reporting queueworker_broker_up 0 and no queue series",
                        type(exc).__name__)

    def _what(self) -> str:
        named = f"{len(self.queues)} named queue(s)"
        return named + (" and discovered queues" if self.discover else "")


def queue_families(stats: Iterable[QueueStats]) -> list[Metric]:
    """The per-queue metric families for probe results."""
    gauges = [(GaugeMetricFamily(name, text, labels=[LABEL]), attr) for name, text, attr in _GAUGES]
    oldest = GaugeMetricFamily(
        "queueworker_queue_oldest_wait_seconds",
        "Seconds the oldest waiting message has waited since it was published (0 when none waits; "
        "absent when the oldest messages carry no publish stamp).", labels=[LABEL])
    orphaned = GaugeMetricFamily("queueworker_queue_orphaned",
                                 "1 when messages wait and no live worker consumes the queue.",
                                 labels=[LABEL])
    completed = CounterMetricFamily("queueworker_queue_completed",
                                    "Tasks of the queue finished by workers, from their heartbeats.",
                                    labels=[LABEL])
    target = GaugeMetricFamily("queueworker_queue_target_wait_seconds",
                               "Wait target of the QueueWorker serving the queue.", labels=[LABEL])
    for s in stats:
        labels = [s.queue]
        for family, attr in gauges:
            family.add_metric(labels, float(getattr(s, attr)))
        if s.oldest_wait is not None:
            oldest.add_metric(labels, s.oldest_wait)
        orphaned.add_metric(labels, 1.0 if s.orphaned else 0.0)
        completed.add_metric(labels, float(s.completed_total))
        if s.target_wait is not None:
            target.add_metric(labels, s.target_wait)
    return [*(family for family, _ in gauges), oldest, orphaned, completed, target]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def wsgi_app(registry: CollectorRegistry) -> Callable[..., Any]:
    """/metrics (and any other path) serves the registry; /healthz answers without touching Redis."""
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok\n"]
        result: Iterable[bytes] = metrics(environ, start_response)
        return result

    return app


class Exporter:
    """The HTTP server of `qw exporter`: start(), then stop() (or serve_forever() until stop())."""

    def __init__(self, redis_url: str, queues: Sequence[str] = (), discover: bool = False,
                 port: int = DEFAULT_PORT, address: str = "0.0.0.0") -> None:
        self.registry = CollectorRegistry()
        self.collector = QueueCollector(redis_client(redis_url), queues, discover)
        self.registry.register(self.collector)
        self.server = make_server(address, port, wsgi_app(self.registry), _Server, _QuietHandler)
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
