"""The one polling loop of the tests (the e2e suite's `tests.e2e.cluster.wait_for` is this one with its
defaults; the operator tests' `eventually` is the same in an event loop)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(
    predicate: Callable[[], Any],
    timeout: float,
    interval: float = 0.05,
    message: str = "condition",
    *,
    tolerate: tuple[type[Exception], ...] = (),
    diagnose: Callable[[], str] | None = None,
    failure: type[Exception] = TimeoutError,
) -> Any:
    """Poll `predicate` until it returns something truthy, and return that; after `timeout` seconds raise
    `failure` naming `message`, the last of the `tolerate`d errors the predicate raised (those count as
    not yet) and what `diagnose` says."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = predicate()
        except tolerate as exc:
            value, last_error = None, exc
        if value:
            return value
        if time.monotonic() > deadline:
            detail = diagnose() if diagnose else ""
            raise failure(
                f"timed out after {timeout:g}s waiting for {message}"
                + (f" (last error: {last_error})" if last_error else "")
                + (f"\n{detail}" if detail else "")
            )
        time.sleep(interval)
