"""The visibility timeout an app runs with (make_app's check of ETAs and the redelivery cap read it)."""

from __future__ import annotations

from celery import Celery

from queueworker.worker.settings import current


def visibility_timeout(app: Celery | None = None) -> float:
    """The visibility timeout an app runs with (from its broker options, else the settings)."""
    if app is not None:
        value = (app.conf.broker_transport_options or {}).get("visibility_timeout")
        if value is not None:
            return float(value)
    return current().visibility_timeout
