"""The worker runtime: hooks make_app() installs on every app, one concern per module.

- stamps:     `qw_published_at` header on every publish (before_task_publish signal)
- task:       the task base class: redelivery cap (limits) and per-task metrics without signal dispatch
- limits:     the redelivery cap (a message redelivered too often is rejected)
- fetch:      the atomic fetch: a message is always in a queue, held by a named worker, or acknowledged
- poolfds:    the prefork pool survives a reconnect after one of its processes exited
- rejects:    malformed messages (not JSON, not a task, unknown task) are dropped, logged and counted
- metrics:    task counters and histograms, prometheus-client multiprocess mode, /metrics server
- heartbeats: per-queue heartbeat records and completion counters in Redis (worker bootstep)
- probestate: the local state file `qw probe` reads (consumer-loop bootstep + heartbeat results)
- shutdown:   SIGTERM finishes running tasks, bounded: past the soft-shutdown timeout they are requeued
"""

from __future__ import annotations

from celery import Celery

from queueworker.runtime import (
    fetch,
    heartbeats,
    metrics,
    poolfds,
    probestate,
    rejects,
    shutdown,
    stamps,
    task,
)


def install(app: Celery) -> None:
    """Connect every runtime hook to `app` (signals are connected once per process)."""
    stamps.connect()
    rejects.install(app)
    fetch.install(app)
    poolfds.install()
    metrics.install(app)
    task.install(app)
    probestate.install(app)
    heartbeats.install(app)
    shutdown.install(app)
