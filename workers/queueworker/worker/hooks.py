"""install(app): connect every worker hook (the modules of this package) to a make_app app."""

from __future__ import annotations

from celery import Celery

from queueworker.worker import (
    fetch,
    healthfile,
    heartbeats,
    metrics,
    poolfds,
    shutdown,
    stamps,
    task,
)


def install(app: Celery) -> None:
    """Connect every worker hook to `app` (signals are connected once per process)."""
    stamps.connect()
    fetch.install(app)
    poolfds.install()
    metrics.install(app)
    task.install(app)
    healthfile.install(app)
    heartbeats.install(app)
    shutdown.install(app)
