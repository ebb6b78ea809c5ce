"""Publish stamp: every message published by a make_app app carries its publish time.

The header (keys.PUBLISHED_HEADER, float Unix seconds) is what wait time (publish -> start) is measured
from, both by the exporter (oldest message in a queue) and by the worker (queueworker_task_wait_seconds).
"""

from __future__ import annotations

import time
from typing import Any

from celery import signals

from queueworker.keys import PUBLISHED_HEADER


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


def connect() -> None:
    signals.before_task_publish.connect(stamp_headers, weak=False, dispatch_uid="queueworker.stamps")
