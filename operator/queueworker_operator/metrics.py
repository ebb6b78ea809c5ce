"""The operator's own Prometheus metrics (docs/internals.md), served on settings.metrics_port.

They live in a private registry, so importing the operator into another process (tests, `qw`) never
pollutes the default one.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

logger = logging.getLogger(__name__)

REGISTRY = CollectorRegistry(auto_describe=True)

RECONCILES = Counter(
    "queueworker_reconciles",
    "QueueWorker reconciles by result (ok, invalid, error).",
    ["result"],
    registry=REGISTRY,
)
RECONCILE_ERRORS = Counter(
    "queueworker_reconcile_errors", "Reconciles that failed with an error.", registry=REGISTRY
)
SCALE_EVENTS = Counter(
    "queueworker_scale_events",
    "Replica changes made by the builtin autoscaler.",
    ["namespace", "queueworker", "direction"],
    registry=REGISTRY,
)
REPLICAS_DESIRED = Gauge(
    "queueworker_replicas_desired",
    "Replicas the operator wants per QueueWorker.",
    ["namespace", "queueworker"],
    registry=REGISTRY,
)
REPLICAS_READY = Gauge(
    "queueworker_replicas_ready",
    "Ready worker replicas per QueueWorker.",
    ["namespace", "queueworker"],
    registry=REGISTRY,
)
AUTOSCALER_TICK = Histogram(
    "queueworker_autoscaler_tick_seconds",
    "Seconds one autoscaler tick took over every QueueWorker (queue stats, decisions, scale writes).",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0),
    registry=REGISTRY,
)


def reconciled(result: str) -> None:
    RECONCILES.labels(result=result).inc()
    if result == "error":
        RECONCILE_ERRORS.inc()


def forget(namespace: str, name: str) -> None:
    """Drop the per-QueueWorker series of a deleted QueueWorker (its scale-event counters too: a
    QueueWorker created again under the same name starts its counters anew, which rate() reads as a
    reset)."""
    for gauge in (REPLICAS_DESIRED, REPLICAS_READY):
        with contextlib.suppress(KeyError):
            gauge.remove(namespace, name)
    for direction in ("up", "down"):
        with contextlib.suppress(KeyError):
            SCALE_EVENTS.remove(namespace, name, direction)


def serve(port: int) -> Any:
    """Start the /metrics HTTP server (port 0: disabled). Returns the server to shut down, or None."""
    if port <= 0:
        return None
    server, _thread = start_http_server(port, registry=REGISTRY)
    logger.info("operator metrics on :%d/metrics", port)
    return server
