"""Graceful shutdown bounded by the grace period.

SIGTERM (what Kubernetes sends) starts Celery's warm shutdown: stop consuming, let running tasks finish,
exit as soon as they have. Unbounded, that ends in SIGKILL at terminationGracePeriodSeconds, and the
tasks still running then sit in `unacked` until the visibility timeout (an hour by default) before anyone
runs them again. So when a warm shutdown starts, a timer gives running tasks
QUEUEWORKER_SOFT_SHUTDOWN_TIMEOUT seconds (keep it a few seconds below the grace period); if the worker
is still there then, it raises SIGQUIT on itself: Celery's cold shutdown cancels what is still running
and puts those messages back in their queue at once (marked redelivered, so the redelivery cap applies).

Celery's own soft shutdown (`worker_soft_shutdown_timeout`, used when SIGQUIT or REMAP_SIGTERM=SIGQUIT
starts a cold shutdown directly) sleeps the whole timeout even when the tasks end sooner; the timer
zeroes it before escalating so the bound is not paid twice. Leave REMAP_SIGTERM unset.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Any

from celery import Celery, signals

log = logging.getLogger(__name__)


def _escalate(app: Celery, timeout: float, started: float) -> None:
    time.sleep(max(0.0, timeout - (time.monotonic() - started)))
    log.warning(
        "tasks still running %.0fs after the shutdown request: cancelling and requeueing them", timeout
    )
    app.conf.worker_soft_shutdown_timeout = 0.0
    os.kill(os.getpid(), signal.SIGQUIT)


def connect(app: Celery) -> None:
    """The bound counts from the shutdown request, which Celery signals from its signal handler, before any
    step stops (a step's stop comes too late: the pool's drain is what is being bounded)."""

    def on_shutting_down(how: str | None = None, **_: Any) -> None:
        timeout = float(app.conf.worker_soft_shutdown_timeout or 0.0)
        if how != "Warm" or timeout <= 0:
            return
        started = time.monotonic()
        threading.Thread(
            target=_escalate, args=(app, timeout, started), name="queueworker-shutdown", daemon=True
        ).start()

    signals.worker_shutting_down.connect(
        on_shutting_down, weak=False, dispatch_uid=f"queueworker.shutdown.{id(app)}"
    )
