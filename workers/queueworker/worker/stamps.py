"""What a task message says about itself: its publish time (the stamp every make_app app adds) and
the queue it came from.

The header (keys.PUBLISHED_HEADER, float Unix seconds) is what wait time (publish -> start) is measured
from, both by the exporter (oldest message in a queue) and by the worker (queueworker_task_wait_seconds).
"""

from __future__ import annotations

import time
from typing import Any

from celery import signals

from queueworker.broker.keys import PUBLISHED_HEADER


def stamp_headers(headers: dict[str, Any] | None = None, **_: Any) -> None:
    """before_task_publish receiver: protocol 2 headers are the message headers, mutable in place."""
    if headers is not None and PUBLISHED_HEADER not in headers:
        headers[PUBLISHED_HEADER] = time.time()


def published_at(request: Any) -> float | None:
    """The publish stamp of a task request/context (custom headers become context attributes)."""
    value = getattr(request, PUBLISHED_HEADER, None)
    if value is None:
        headers = getattr(request, "headers", None) or {}
        value = headers.get(PUBLISHED_HEADER) if isinstance(headers, dict) else None
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def queue_of(request: Any) -> str:
    """The queue a task request was delivered from (its routing key), "celery" when it does not say."""
    info = getattr(request, "delivery_info", None) or {}
    return str(info.get("routing_key") or info.get("queue") or "celery")


def connect() -> None:
    """Every publish of every process (producers and beat have no bootsteps), as the message is built."""
    signals.before_task_publish.connect(stamp_headers, weak=False, dispatch_uid="queueworker.stamps")
