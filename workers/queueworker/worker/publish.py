"""A publish that fails while the broker fails over is tried again through the current primary, for a
bounded time: QUEUEWORKER_PUBLISH_RETRY_SECONDS (default 30) from the first attempt; the attempt under way
when the bound passes may add one socket timeout. Every attempt carries the same task id, so a publish
that reached a primary which then lost it, or one that reached it twice, is one task id (a consumer may
run it twice, never zero times once acknowledged). After the bound, `PublishError` names the cause."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import redis
from kombu.exceptions import OperationalError

log = logging.getLogger(__name__)

#: Seconds between two attempts.
RETRY_PAUSE = 0.5


class PublishError(OperationalError):
    """A publish that was not acknowledged within QUEUEWORKER_PUBLISH_RETRY_SECONDS."""


def with_retry(send: Callable[[], Any], name: str, bound: float) -> Any:
    """`send()` until it returns, for at most `bound` seconds of connection errors."""
    started = time.monotonic()
    attempts = 0
    while True:
        attempts += 1
        try:
            return send()
        except (OperationalError, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            waited = time.monotonic() - started
            if _refused(exc):
                raise
            if waited + RETRY_PAUSE > bound:
                raise PublishError(
                    f"task {name} not published: {exc} (gave up after {attempts} attempt(s) in "
                    f"{waited:.1f}s; QUEUEWORKER_PUBLISH_RETRY_SECONDS={bound:g})"
                ) from exc
            log.warning("publish of %s failed (%s); trying again", name, type(exc).__name__)
            time.sleep(RETRY_PAUSE)


def _refused(exc: BaseException) -> bool:
    """A wrong password or missing permission: trying again cannot help."""
    refused = (redis.exceptions.AuthenticationError, redis.exceptions.AuthorizationError)
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, refused):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
