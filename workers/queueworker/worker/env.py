"""The worker's QUEUEWORKER_* numbers, read from the environment (make_app and the hooks both read them)."""

from __future__ import annotations

import os

from celery import Celery


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"{name}={raw!r} is not a number") from exc


def env_int(name: str, default: int) -> int:
    return int(env_float(name, float(default)))


def visibility_timeout(app: Celery | None = None) -> float:
    """The visibility timeout an app runs with (from its broker options, else the environment)."""
    if app is not None:
        value = (app.conf.broker_transport_options or {}).get("visibility_timeout")
        if value is not None:
            return float(value)
    return env_float("QUEUEWORKER_VISIBILITY_TIMEOUT", 3600.0)
