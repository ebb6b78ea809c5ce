"""Malformed messages are dropped, logged and counted; the worker keeps consuming.

- Raw list items that are not a kombu JSON envelope (not JSON, not UTF-8, nested past the recursion limit,
  no `properties`, a body that is not base64): kombu's
  Redis channel raises out of its BRPOP reader and Celery stops the worker ("Unrecoverable error").
  make_app's apps use `Transport` below (broker_transport), whose channel catches exactly those errors
  for the item just popped, logs it (truncated), pushes it to `queueworker:malformed:{queue}` (last
  100 kept, 64 KiB of each, for inspection) and counts it in celery_task_rejected_total{name="(malformed)"}.
- `QoS` below: restoring unacked messages after a lost connection is best effort, and a message popped
  just as Redis goes away is put back in its queue when Redis answers again rather than dropped (see
  their docstrings).
- A body Celery cannot decode: `Consumer.on_decode_error` counts it, then Celery acks it (drops it).
- Unknown task names, invalid task messages and messages that are not tasks: Celery rejects them and sends
  task_unknown / task_rejected, counted in runtime/metrics.py. A body of the wrong shape for a known task
  (Celery raises while building the request) is rejected the same way by `Consumer` below.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from typing import Any

from celery import Celery
from celery.worker.consumer import Consumer as CeleryConsumer
from kombu.transport import redis as kombu_redis

from queueworker.keys import PREFIX

log = logging.getLogger(__name__)

MALFORMED_KEEP = 100
#: Bytes of each malformed item kept: 100 oversized items must not fill a noeviction Redis.
MALFORMED_KEEP_BYTES = 64 * 1024


def malformed_key(queue: str) -> str:
    return f"{PREFIX}malformed:{queue}"


def record_malformed(queue: str, raw: str | None, error: BaseException) -> None:
    from queueworker.runtime import metrics

    metrics.count_rejected(metrics.MALFORMED, queue)
    log.error("dropped a malformed message from queue %r (%s): %.200r", queue, type(error).__name__, raw)


class QoS(kombu_redis.QoS):
    """kombu's Redis QoS, except that restoring unacked messages when the channel closes after a lost
    broker connection cannot stop the worker: kombu may try it after the connection was released
    (`connection.client` is None, an AttributeError Celery calls unrecoverable) or while Redis is still
    down. Those messages stay in the `unacked` hash and come back after the visibility timeout."""

    def restore_unacked(self, client: Any = None) -> Any:
        try:
            return super().restore_unacked(client)
        except (AttributeError, *self.channel.connection_errors) as exc:
            released = getattr(self.channel.connection, "client", None) is None
            if isinstance(exc, AttributeError) and not released:
                raise
            log.warning("could not restore %d unacked message(s) now (%s); they return to their queue after "
                        "the visibility timeout", len(self._delivered), type(exc).__name__)
            self._delivered.clear()
            return None


    def ack(self, delivery_tag: Any) -> None:
        """kombu's ack, except that a task finishing after its channel was closed by a reconnect (kombu then
        fails with an AttributeError Celery calls unrecoverable) cannot stop the worker: the message stays
        in `unacked` and returns to its queue after the visibility timeout (it may run again)."""
        try:
            super().ack(delivery_tag)
        except AttributeError:
            if getattr(self.channel.connection, "client", None) is not None:
                raise
            log.warning("could not acknowledge message %s: its broker connection was replaced; it returns to "
                        "its queue after the visibility timeout and may run again", delivery_tag)
            self._delivered.pop(delivery_tag, None)

    def append(self, message: Any, delivery_tag: Any) -> None:
        """Record a delivered message in `unacked`. When Redis goes away between handing the message to
        this worker's BRPOP and that record, the message now exists only here: kombu would drop it. Keep
        it, and put it back in its queue as soon as Redis answers again (`Channel.restore_stranded`); the
        worker does not run it now (a task started now would be cancelled by the reconnect anyway)."""
        try:
            super().append(message, delivery_tag)
        except self.channel.connection_errors as exc:
            info = getattr(message, "delivery_info", None) or {}
            with _stranded_lock:
                _STRANDED.append((message._raw, str(info.get("exchange") or ""),
                                  str(info.get("routing_key") or "")))
            log.warning("the broker went away before message %s was recorded as unacked (%s); it goes back "
                        "to its queue when the broker answers again", delivery_tag, type(exc).__name__)
            raise


#: Messages BRPOP handed to this worker just before Redis went away, not recorded in `unacked`:
#: (payload, exchange, routing key). They exist nowhere else until put back in their queue.
_STRANDED: list[tuple[Any, str, str]] = []
_stranded_lock = threading.Lock()


class Channel(kombu_redis.Channel):
    QoS = QoS

    def _brpop_start(self, timeout: Any = None) -> Any:
        if _STRANDED:
            self.restore_stranded()
        return super()._brpop_start(timeout)

    def restore_stranded(self) -> int:
        """Put the stranded messages back at the head of their queues (marked redelivered); 0 while Redis
        still does not answer (the next poll tries again)."""
        with _stranded_lock:
            pending = list(_STRANDED)
        if not pending:
            return 0
        try:
            with self.conn_or_acquire() as client:
                pipe = client.pipeline()
                for payload, exchange, routing_key in pending:
                    self._do_restore_message(payload, exchange, routing_key, pipe, leftmost=False)
                pipe.execute()
        except self.connection_errors:
            return 0
        with _stranded_lock:
            del _STRANDED[:len(pending)]
        log.warning("put %d message(s) back in their queue: the broker went away before they were recorded "
                    "as unacked", len(pending))
        return len(pending)

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
                            malformed_key(queue), 0, MALFORMED_KEEP - 1).execute()
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
        if name != __file__ and any(part in name for part in consumers):  # QoS.append above is kombu's side
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
        from queueworker.runtime import metrics

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
        app.conf.broker_transport = "queueworker.runtime.rejects:Transport"
    app.conf.worker_consumer = "queueworker.runtime.rejects:Consumer"
