"""QueueWorker: the API (api), what lives in Redis (broker), the worker (worker: make_app and its hooks),
the beat (beat), the exporter, the builders and the autoscaling policy the operator shares (builders,
scaling, contract, settings), local mode (local) and the `qw` command (cli). docs/internals.md lists the
layers; the operator is the separate package queueworker_operator."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from celery import Celery


def make_app(main: str, **overrides: Any) -> Celery:
    """A Celery app configured from QUEUEWORKER_* variables with the platform's safe defaults."""
    from queueworker.worker.app import make_app as _make_app

    return _make_app(main, **overrides)


__all__ = ["__version__", "make_app"]
