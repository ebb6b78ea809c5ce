"""make_app(): a Celery app configured from QUEUEWORKER_* variables with the platform's safe defaults.

Environment (all optional):
  QUEUEWORKER_BROKER_URL              broker, default redis://localhost:6379/0
  QUEUEWORKER_RESULT_BACKEND          result backend (none by default)
  QUEUEWORKER_VISIBILITY_TIMEOUT      seconds, default 3600: broker, result backend and ETA limit
  QUEUEWORKER_PREFETCH_MULTIPLIER     default 1
  QUEUEWORKER_ROUTES_FILE             routes JSON (the operator's routes ConfigMap) -> task_routes
  QUEUEWORKER_SOFT_SHUTDOWN_TIMEOUT   seconds SIGTERM lets running tasks finish before requeueing them,
                                      default 25 (0: wait for them without bound); worker/shutdown.py
  QUEUEWORKER_MAX_REDELIVERIES        redeliveries allowed before a message is rejected, default 3
  QUEUEWORKER_BROKER_SOCKET_TIMEOUT   seconds, default 10: how fast a dead Redis is noticed
  QUEUEWORKER_ATOMIC_FETCH            default 1: fetch and record in one Redis operation (worker/fetch.py);
                                      0 consumes the stock kombu way (BRPOP, then record), for comparisons
  QUEUEWORKER_HEARTBEAT_INTERVAL, QUEUEWORKER_METRICS_PORT, QUEUEWORKER_STATE_DIR: see runtime/.

Redis must run with `maxmemory-policy noeviction`: an evicted queue list or `unacked` hash loses tasks.
On SIGTERM running tasks get QUEUEWORKER_SOFT_SHUTDOWN_TIMEOUT seconds to finish (the worker exits as
soon as they have); whatever still runs then is requeued at once instead of after the visibility timeout.
Keep that timeout a few seconds below the pod's terminationGracePeriodSeconds; leave REMAP_SIGTERM unset.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from celery import Celery

from queueworker.worker.env import env_float, env_int, visibility_timeout

DEFAULT_BROKER_URL = "redis://localhost:6379/0"


def _delay_seconds(countdown: Any, eta: Any) -> float | None:
    if countdown is not None:
        return float(countdown)
    if eta is None:
        return None
    when = datetime.fromisoformat(eta) if isinstance(eta, str) else eta
    if not isinstance(when, datetime):
        return None
    if when.tzinfo is None:  # Celery reads a naive ETA as UTC (enable_utc)
        when = when.replace(tzinfo=UTC)
    return (when - datetime.now(UTC)).total_seconds()


class QueueWorkerCelery(Celery):
    """Celery with one publish-time check: no ETA/countdown beyond the visibility timeout.

    Every publish (Task.apply_async, delay, retry, send_task, beat) goes through send_task, so the check
    covers them all. A longer delay would make Redis hand the message to a second worker while the first
    still holds it, and the task would run twice.
    """

    def send_task(
        self,
        name: str,
        args: Any = None,
        kwargs: Any = None,
        countdown: Any = None,
        eta: Any = None,
        *rest: Any,
        **options: Any,
    ) -> Any:
        delay = _delay_seconds(countdown, eta)
        limit = visibility_timeout(self)
        if delay is not None and delay > limit:
            what = (
                f"countdown={float(countdown):g}s"
                if countdown is not None
                else f"eta={eta} ({delay:.0f}s away)"
            )
            raise ValueError(
                f"task {name}: {what} exceeds QUEUEWORKER_VISIBILITY_TIMEOUT={limit:g}s; Redis would deliver "
                f"it to a second worker before it runs, so it would run twice. Use a shorter delay or raise "
                f"QUEUEWORKER_VISIBILITY_TIMEOUT (it must exceed the longest task and any ETA)."
            )
        return super().send_task(name, args, kwargs, countdown, eta, *rest, **options)


def broker_transport_options(vt: float) -> dict[str, Any]:
    socket_timeout = env_float("QUEUEWORKER_BROKER_SOCKET_TIMEOUT", 10.0)
    return {
        "visibility_timeout": vt,
        # Notice a dead or hung Redis instead of blocking forever on a half-open socket.
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": socket_timeout,
        "socket_keepalive": True,
        "health_check_interval": max(1.0, min(socket_timeout, 10.0)),
        "retry_on_timeout": True,
        # Sweep `unacked` for messages past the visibility timeout every min(10, vt/5) s (kombu's default
        # is a scan every 10 s x throttle 10 = 100 s, longer than a short visibility timeout itself).
        "unacked_restore_interval": max(1, min(10, int(vt / 5))),
        "unacked_restore_throttle": 1,
    }


def base_config(main: str) -> dict[str, Any]:
    vt = env_float("QUEUEWORKER_VISIBILITY_TIMEOUT", 3600.0)
    if vt <= 0:
        raise ValueError(f"QUEUEWORKER_VISIBILITY_TIMEOUT must be > 0 (got {vt:g})")
    broker = os.environ.get("QUEUEWORKER_BROKER_URL") or DEFAULT_BROKER_URL
    transport = broker_transport_options(vt)
    config: dict[str, Any] = {
        "broker_url": broker,
        "broker_transport_options": transport,
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        "broker_heartbeat": 0,
        # JSON only: nothing from the queue is ever unpickled.
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "event_serializer": "json",
        # A task is acknowledged after it ran; a lost worker's tasks go back to the queue (capped, see
        # worker/limits.py).
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": env_int("QUEUEWORKER_PREFETCH_MULTIPLIER", 1),
        "worker_soft_shutdown_timeout": env_float("QUEUEWORKER_SOFT_SHUTDOWN_TIMEOUT", 25.0),
        "worker_enable_soft_shutdown_on_idle": True,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "task_default_queue": "celery",
        "task_create_missing_queues": True,
        "worker_hijack_root_logger": True,
        "worker_send_task_events": False,
        "task_send_sent_event": False,
        "enable_utc": True,
        # Beat (celery-redbeat): its lock must outlive a beat tick but not a dead beat for long.
        "redbeat_redis_url": broker,
        "redbeat_key_prefix": "redbeat:",
        "redbeat_lock_timeout": int(env_float("QUEUEWORKER_BEAT_LOCK_TIMEOUT", 30.0)),
        "beat_max_loop_interval": min(5.0, env_float("QUEUEWORKER_BEAT_LOCK_TIMEOUT", 30.0) / 3),
        "redbeat_redis_options": {
            "socket_timeout": transport["socket_timeout"],
            "socket_keepalive": True,
            "health_check_interval": transport["health_check_interval"],
            "retry_period": 60,
        },
    }
    backend = os.environ.get("QUEUEWORKER_RESULT_BACKEND")
    if backend:
        config["result_backend"] = backend
        config["result_backend_transport_options"] = {"visibility_timeout": vt}
        config["result_expires"] = 86400
    routes_file = os.environ.get("QUEUEWORKER_ROUTES_FILE")
    if routes_file:
        from queueworker.api.routes import task_routes_from_file

        config["task_routes"] = task_routes_from_file(routes_file)
    return config


def make_app(main: str, **overrides: Any) -> Celery:
    """A Celery app configured from QUEUEWORKER_* variables with the platform's safe defaults.

    `overrides` are Celery settings (lowercase names) applied last. Tasks declared on the app get the
    QueueWorker task base (redelivery cap, task metrics); every publish carries the `qw_published_at`
    header; a worker of this app writes heartbeats, serves metrics and keeps the probes' state file
    (runtime/).
    """
    from queueworker.worker.hooks import install

    app = QueueWorkerCelery(main, task_cls="queueworker.worker.task:QueueWorkerTask")
    config = base_config(main)
    config.update(overrides)
    if "broker_url" in overrides and "redbeat_redis_url" not in overrides:
        config["redbeat_redis_url"] = overrides["broker_url"]  # beat's store follows the broker
    app.conf.update(config)
    install(app)
    return app
