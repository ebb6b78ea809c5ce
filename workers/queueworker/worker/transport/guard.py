"""The malformed-message guard: what kombu or Celery cannot read is dropped, logged and counted, and the
worker keeps consuming.

- Raw list items that are not a kombu JSON envelope (not JSON, not UTF-8, nested past the recursion limit,
  no `properties`, a body that is not base64): kombu's Redis channel raises out of its BRPOP reader and
  Celery stops the worker ("Unrecoverable error"). The platform's Channel (channel.py) catches exactly those
  errors for the item just popped (`from_envelope`), logs it (truncated), pushes it to
  `queueworker:malformed:{queue}` (last 100 kept, 64 KiB of each, for inspection) and counts it in
  celery_task_rejected_total{name="(malformed)"}.
- `NonBlockingPubSub`: the pub/sub (remote control) socket is read without blocking, so a connection cut
  under it cannot stop the event loop.
- A body Celery cannot decode: `Consumer.on_decode_error` counts it, then Celery acks it (drops it).
- Unknown task names, invalid task messages and messages that are not tasks: Celery rejects them and sends
  task_unknown / task_rejected, counted in worker/metrics.py. A body of the wrong shape for a known task
  (Celery raises while building the request) is rejected the same way by `Consumer` below.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from celery.worker.consumer import Consumer as CeleryConsumer

from queueworker.broker.keys import PREFIX

log = logging.getLogger(__name__)
_HERE = os.path.dirname(os.path.abspath(__file__))

MALFORMED_KEEP = 100
#: Bytes of each malformed item kept: 100 oversized items must not fill a noeviction Redis.
MALFORMED_KEEP_BYTES = 64 * 1024


def malformed_key(queue: str) -> str:
    return f"{PREFIX}malformed:{queue}"


def record_malformed(queue: str, raw: str | None, error: BaseException) -> None:
    from queueworker.worker import metrics

    metrics.count_rejected(metrics.MALFORMED, queue)
    log.error("dropped a malformed message from queue %r (%s): %.200r", queue, type(error).__name__, raw)


class NonBlockingPubSub:
    """A pub/sub client whose parse_response never blocks: kombu reads it when the poller says its socket
    is readable, but redis-py's blocking read reconnects a dropped connection and then waits without a
    timeout. After a cut connection that wait never ended and the worker's event loop stood still."""

    def __init__(self, pubsub: Any) -> None:
        self._pubsub = pubsub

    def parse_response(self, *args: Any, **kwargs: Any) -> Any:
        return self._pubsub.parse_response(block=False, timeout=0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pubsub, name)


def keep_malformed(client: Any, queue: str, raw: str) -> None:
    """Keep the last MALFORMED_KEEP raw items dropped from `queue` for inspection."""
    client.pipeline().lpush(malformed_key(queue), raw).ltrim(
        malformed_key(queue), 0, MALFORMED_KEEP - 1
    ).execute()


def from_envelope(exc: BaseException) -> bool:
    """True when the error comes from kombu reading the popped item into a message (JSON, base64, the
    envelope's fields), not from Celery's or our consumer code that the message was handed to."""
    tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None  # skip the channel's reader
    if tb is None:
        return False
    consumers = (f"{os.sep}celery{os.sep}", f"{os.sep}queueworker{os.sep}")
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        ours = os.path.dirname(name) == _HERE  # this package's channel and guard
        if not ours and any(part in name for part in consumers):  # kombu's side
            return False
        tb = tb.tb_next
    return True


def from_request(exc: BaseException) -> bool:
    """True when the error comes from Celery turning a message into a request (strategy, Request)."""
    tb = exc.__traceback__
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if name.endswith((os.path.join("worker", "strategy.py"), os.path.join("worker", "request.py"))):
            return True
        tb = tb.tb_next
    return False


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
                if not from_request(exc):
                    raise
                return self.on_invalid_task(None, message, exc)

        return on_task_received
