"""Malformed messages are dropped, logged and counted; the worker keeps consuming.

- Raw list items that are not a kombu JSON envelope (not JSON, not UTF-8, no `properties`): kombu's
  Redis channel raises out of its BRPOP reader and Celery stops the worker ("Unrecoverable error").
  make_app's apps use `Transport` below (broker_transport), whose channel catches exactly those errors
  for the item just popped, logs it (truncated), pushes it to `queueworker:malformed:{queue}` (last
  100 kept, for inspection) and counts it in celery_task_rejected_total{name="(malformed)"}.
- A body Celery cannot decode: `Consumer.on_decode_error` counts it, then Celery acks it (drops it).
- Unknown task names, invalid task messages and messages that are not tasks: Celery rejects them and sends
  task_unknown / task_rejected, counted in runtime/metrics.py.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from celery import Celery
from celery.worker.consumer import Consumer as CeleryConsumer
from kombu.transport import redis as kombu_redis

from queueworker.keys import PREFIX

log = logging.getLogger(__name__)

MALFORMED_KEEP = 100


def malformed_key(queue: str) -> str:
    return f"{PREFIX}malformed:{queue}"


def record_malformed(queue: str, raw: str | None, error: BaseException) -> None:
    from queueworker.runtime import metrics

    metrics.count_rejected(metrics.MALFORMED, queue)
    log.error("dropped a malformed message from queue %r (%s): %.200r", queue, type(error).__name__, raw)


class Channel(kombu_redis.Channel):
    def _last_queue(self) -> str:
        items = getattr(self._queue_cycle, "items", None) or []
        return str(items[-1]) if items else "unknown"  # the reader rotates the popped queue last

    def _brpop_read(self, **options: Any) -> Any:
        try:
            return super()._brpop_read(**options)
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError) as exc:
            if isinstance(exc, (KeyError, TypeError, AttributeError)) and not _from_envelope(exc):
                raise
            queue = self._last_queue()
            raw = exc.doc if isinstance(exc, json.JSONDecodeError) else None
            record_malformed(queue, raw, exc)
            if raw is not None:
                try:
                    with self.conn_or_acquire() as client:
                        client.pipeline().lpush(malformed_key(queue), raw).ltrim(
                            malformed_key(queue), 0, MALFORMED_KEEP - 1).execute()
                except self.connection_errors:
                    pass
            raise kombu_redis.Empty() from None


def _from_envelope(exc: BaseException) -> bool:
    """True when the error comes from kombu reading the message envelope (not from a consumer)."""
    tb = exc.__traceback__
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    return last is not None and "kombu" in last.tb_frame.f_code.co_filename


class Transport(kombu_redis.Transport):
    Channel = Channel


class Consumer(CeleryConsumer):
    def on_decode_error(self, message: Any, exc: BaseException) -> None:
        from queueworker.runtime import metrics

        info = getattr(message, "delivery_info", None) or {}
        metrics.count_rejected(metrics.MALFORMED, str(info.get("routing_key") or "unknown"))
        super().on_decode_error(message, exc)


def install(app: Celery) -> None:
    if str(app.conf.broker_url or "").startswith("redis://"):
        app.conf.broker_transport = "queueworker.runtime.rejects:Transport"
    app.conf.worker_consumer = "queueworker.runtime.rejects:Consumer"
