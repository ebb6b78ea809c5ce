"""make_app(): a Celery app configured from QUEUEWORKER_* variables with the platform's safe defaults.

The variables are one typed table, worker/settings.py (docs/worker-settings.md is generated from it), read
once here. Redis must run with `maxmemory-policy noeviction`: an evicted queue list or `unacked` hash loses
tasks. On SIGTERM running tasks get QUEUEWORKER_SOFT_SHUTDOWN_TIMEOUT seconds to finish (the worker exits
as soon as they have); whatever still runs then is requeued at once instead of after the visibility
timeout. Keep that timeout a few seconds below the pod's terminationGracePeriodSeconds; leave
REMAP_SIGTERM unset.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from celery import Celery
from kombu.utils.uuid import uuid

from queueworker.worker.brokerconf import broker_config
from queueworker.worker.env import visibility_timeout
from queueworker.worker.publish import with_retry
from queueworker.worker.settings import WorkerSettings, current, use


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
        if not rest:
            options.setdefault("task_id", uuid())  # the same id on every attempt
        bound = current().publish_retry_seconds
        send = super().send_task
        return with_retry(lambda: send(name, args, kwargs, countdown, eta, *rest, **options), name, bound)


def broker_transport_options(settings: WorkerSettings) -> dict[str, Any]:
    vt, socket_timeout = settings.visibility_timeout, settings.broker_socket_timeout
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
        # Acknowledged means durable (worker/transport/durable.py).
        "qw_min_replicas": settings.publish_min_replicas,
        "qw_wait_timeout": settings.publish_wait_timeout,
        "qw_waitaof": settings.publish_waitaof,
        "qw_waitaof_timeout": settings.publish_waitaof_timeout,
    }


def with_broker(url: str, transport: dict[str, Any], settings: WorkerSettings) -> dict[str, Any]:
    """The broker settings for `url` (worker/brokerconf.py), its transport options merged into `transport`."""
    config = broker_config(url, float(transport["socket_timeout"]), settings.broker_env())
    options = {**transport, **config.pop("queueworker_transport_options")}
    config["broker_transport_options"] = options
    return config


def base_config(main: str, settings: WorkerSettings | None = None) -> dict[str, Any]:
    settings = settings or current()
    vt = settings.visibility_timeout
    transport = broker_transport_options(settings)
    config: dict[str, Any] = {
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
        "worker_prefetch_multiplier": settings.prefetch_multiplier,
        "worker_soft_shutdown_timeout": settings.soft_shutdown_timeout,
        "worker_enable_soft_shutdown_on_idle": True,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        # The malformed-message guard's consumer (worker/transport/guard.py).
        "worker_consumer": "queueworker.worker.transport:Consumer",
        "task_default_queue": "celery",
        "task_create_missing_queues": True,
        "worker_hijack_root_logger": True,
        "worker_send_task_events": False,
        "task_send_sent_event": False,
        "enable_utc": True,
        # Beat (redbeat, on the broker): its lock must outlive a beat tick but not a dead beat for long.
        "redbeat_key_prefix": "redbeat:",
        "redbeat_lock_timeout": int(settings.beat_lock_timeout),
        "beat_max_loop_interval": min(5.0, settings.beat_lock_timeout / 3),
    }
    config.update(with_broker(settings.broker_url, transport, settings))
    backend = settings.result_backend
    if backend:
        config["result_backend"] = backend
        config["result_backend_transport_options"] = {"visibility_timeout": vt}
        config["result_expires"] = 86400
    routes_file = settings.routes_file
    if routes_file:
        from queueworker.api.routes import task_routes_from_file

        config["task_routes"] = task_routes_from_file(routes_file)
    return config


def make_app(main: str, **overrides: Any) -> Celery:
    """A Celery app configured from QUEUEWORKER_* variables with the platform's safe defaults.

    `overrides` are Celery settings (lowercase names) applied last. Tasks declared on the app get the
    QueueWorker task base (redelivery cap, task metrics); every publish carries the `qw_published_at`
    header; a worker of this app writes heartbeats, serves metrics and keeps the probes' health file (the
    bootsteps of queueworker/worker/hooks.py).
    """
    from queueworker.worker.hooks import install

    settings = use(WorkerSettings.from_env())
    app = QueueWorkerCelery(main, task_cls="queueworker.worker.task:QueueWorkerTask")
    config = base_config(main, settings)
    if "broker_url" in overrides:  # the broker (and beat's store, which follows it) from the given URL
        rest = {k: v for k, v in overrides.items() if k != "broker_url"}
        transport = {**config["broker_transport_options"], **rest.get("broker_transport_options", {})}
        broker = with_broker(str(overrides["broker_url"]), transport, settings)
        if "redbeat_redis_url" in overrides:
            broker = {k: v for k, v in broker.items() if not k.startswith("redbeat_")}
        config.update(broker)
        overrides = {k: v for k, v in rest.items() if k != "broker_transport_options"}
    config.update(overrides)
    app.conf.update(config)
    install(app)
    return app
