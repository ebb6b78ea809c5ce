"""QueueWorker's worker library: make_app(), the worker runtime, the queue probe, the exporter,
beat glue, local mode and the `qw` command."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from celery import Celery


def make_app(main: str, **overrides: Any) -> Celery:
    """A Celery app configured from QUEUEWORKER_* variables with the platform's safe defaults."""
    from queueworker.app import make_app as _make_app

    return _make_app(main, **overrides)


__all__ = ["__version__", "make_app"]
