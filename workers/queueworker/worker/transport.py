"""Malformed messages are dropped, logged and counted; the worker keeps consuming.

- Raw list items that are not a kombu JSON envelope (not JSON, not UTF-8, nested past the recursion limit,
  no `properties`, a body that is not base64): kombu's
  Redis channel raises out of its BRPOP reader and Celery stops the worker ("Unrecoverable error").
  make_app's apps use `Transport` below (broker_transport), whose channel catches exactly those errors
  for the item just popped, logs it (truncated), pushes it to `queueworker:malformed:{queue}` (last
  100 kept, 64 KiB of each, for inspection) and counts it in celery_task_rejected_total{name="(malformed)"}.
- `QoS` below: the atomic fetch's (worker/fetch.py); restoring unacked messages, acks and rejects after a
  lost connection cannot stop the worker (see their docstrings).
- `Channel._receive_one`: the pub/sub (remote control) socket is read without blocking, so a connection cut
  under it cannot stop the event loop.
- A body Celery cannot decode: `Consumer.on_decode_error` counts it, then Celery acks it (drops it).
- Unknown task names, invalid task messages and messages that are not tasks: Celery rejects them and sends
  task_unknown / task_rejected, counted in worker/metrics.py. A body of the wrong shape for a known task
  (Celery raises while building the request) is rejected the same way by `Consumer` below.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from celery import Celery
from celery.worker.consumer import Consumer as CeleryConsumer
from kombu.transport import redis as kombu_redis

from queueworker.broker.keys import PREFIX
from queueworker.worker import fetch

log = logging.getLogger(__name__)

MALFORMED_KEEP = 100
#: Bytes of each malformed item kept: 100 oversized items must not fill a noeviction Redis.
MALFORMED_KEEP_BYTES = 64 * 1024


def malformed_key(queue: str) -> str:
    return f"{PREFIX}malformed:{queue}"


def record_malformed(queue: str, raw: str | None, error: BaseException) -> None:
    from queueworker.worker import metrics

    metrics.count_rejected(metrics.MALFORMED, queue)
    log.error("dropped a malformed message from queue %r (%s): %.200r", queue, type(error).__name__, raw)


class QoS(fetch.QoS):
    """The atomic fetch's QoS (worker/fetch.py), except that restoring unacked messages when the channel
    closes after a lost broker connection cannot stop the worker: kombu may try it after the connection was
    released (`connection.client` is None, an AttributeError Celery calls unrecoverable) or while Redis is
    still down. Those messages stay held by this worker and the next sweep puts them back in their queue
    (a stock kombu record comes back after the visibility timeout)."""

    def restore_unacked(self, client: Any = None) -> Any:
        try:
            return super().restore_unacked(client)
        except (AttributeError, *self.channel.connection_errors) as exc:
            released = getattr(self.channel.connection, "client", None) is None
            if isinstance(exc, AttributeError) and not released:
                raise
            log.warning(
                "could not restore %d unacked message(s) now (%s); they go back to their queue when "
                "the broker answers again",
                len(self._delivered),
                type(exc).__name__,
            )
            self._delivered.clear()
            return None

    def ack(self, delivery_tag: Any) -> None:
        """The fetch's ack, except that a task finishing after its channel was closed by a reconnect (kombu
        then fails with an AttributeError Celery calls unrecoverable) cannot stop the worker: the ack is sent
        again by the next sweep of a live channel, if this worker still holds the message."""
        try:
            super().ack(delivery_tag)
        except AttributeError:
            if getattr(self.channel.connection, "client", None) is not None:
                raise
            if self._atomic(delivery_tag):
                with fetch._pending_lock:
                    fetch._PENDING_ACKS.add(str(delivery_tag))
            log.warning(
                "could not acknowledge message %s now: its broker connection was replaced", delivery_tag
            )
            self._delivered.pop(delivery_tag, None)

    def reject(self, delivery_tag: Any, requeue: bool = False) -> None:
        """A reject after the channel was closed by a reconnect cannot stop the worker either: the message
        is still held by this worker (the sweep puts it back) or already back in its queue."""
        try:
            super().reject(delivery_tag, requeue=requeue)
        except AttributeError:
            if getattr(self.channel.connection, "client", None) is not None:
                raise
            log.warning("could not reject message %s now: its broker connection was replaced", delivery_tag)
            self._delivered.pop(delivery_tag, None)


class _NonBlockingPubSub:
    """A pub/sub client whose parse_response never blocks: kombu reads it when the poller says its socket
    is readable, but redis-py's blocking read reconnects a dropped connection and then waits without a
    timeout. After a cut connection that wait never ended and the worker's event loop stood still."""

    def __init__(self, pubsub: Any) -> None:
        self._pubsub = pubsub

    def parse_response(self, *args: Any, **kwargs: Any) -> Any:
        return self._pubsub.parse_response(block=False, timeout=0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pubsub, name)


class Channel(fetch.Channel):
    QoS = QoS

    def _receive_one(self, c: Any) -> Any:
        return super()._receive_one(_NonBlockingPubSub(c))

    def _last_queue(self) -> str:
        items = getattr(self._queue_cycle, "items", None) or []
        return str(items[-1]) if items else "unknown"  # the reader rotates the popped queue last

    def _brpop_read(self, **options: Any) -> Any:
        try:
            return super()._brpop_read(**options)
        except (ValueError, RecursionError, LookupError, TypeError, AttributeError) as exc:
            # ValueError covers JSONDecodeError, UnicodeDecodeError and binascii.Error (bad base64 body);
            # RecursionError is JSON nested deeper than the parser's recursion limit.
            if not isinstance(exc, json.JSONDecodeError) and not _from_envelope(exc):
                raise
            queue = self._last_queue()
            raw = exc.doc[:MALFORMED_KEEP_BYTES] if isinstance(exc, json.JSONDecodeError) else None
            record_malformed(queue, raw, exc)
            if raw is not None:
                try:
                    with self.conn_or_acquire() as client:
                        client.pipeline().lpush(malformed_key(queue), raw).ltrim(
                            malformed_key(queue), 0, MALFORMED_KEEP - 1
                        ).execute()
                except self.connection_errors:
                    pass
            raise kombu_redis.Empty() from None


def _from_envelope(exc: BaseException) -> bool:
    """True when the error comes from kombu reading the popped item into a message (JSON, base64, the
    envelope's fields), not from Celery's or our consumer code that the message was handed to."""
    tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None  # skip _brpop_read above
    if tb is None:
        return False
    consumers = (f"{os.sep}celery{os.sep}", f"{os.sep}queueworker{os.sep}")
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if name not in (__file__, fetch.__file__) and any(part in name for part in consumers):  # kombu's side
            return False
        tb = tb.tb_next
    return True


def _from_request(exc: BaseException) -> bool:
    """True when the error comes from Celery turning a message into a request (strategy, Request)."""
    tb = exc.__traceback__
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if name.endswith((os.path.join("worker", "strategy.py"), os.path.join("worker", "request.py"))):
            return True
        tb = tb.tb_next
    return False


class Transport(kombu_redis.Transport):
    Channel = Channel


class Consumer(CeleryConsumer):
    def on_decode_error(self, message: Any, exc: BaseException) -> None:
        from queueworker.worker import metrics

        info = getattr(message, "delivery_info", None) or {}
        metrics.count_rejected(metrics.MALFORMED, str(info.get("routing_key") or "unknown"))
        super().on_decode_error(message, exc)

    def create_task_handler(self, *args: Any, **kwargs: Any) -> Any:
        """Celery's handler, plus: a task message whose body has the wrong shape (not [args, kwargs, embed],
        args not a list, ...) makes building the request raise; reject it as an invalid task instead of
        letting the error stop the worker (and the message come back to stop the next one)."""
        handler = super().create_task_handler(*args, **kwargs)

        def on_task_received(message: Any) -> Any:
            try:
                return handler(message)
            except (ValueError, TypeError, LookupError, AttributeError) as exc:
                if not _from_request(exc):
                    raise
                return self.on_invalid_task(None, message, exc)

        return on_task_received


def install(app: Celery) -> None:
    if str(app.conf.broker_url or "").startswith("redis://"):
        app.conf.broker_transport = "queueworker.worker.transport:Transport"
    app.conf.worker_consumer = "queueworker.worker.transport:Consumer"
