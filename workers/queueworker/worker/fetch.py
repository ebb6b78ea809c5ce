"""The atomic fetch: no message exists only in a worker's socket, whatever Redis or the network does.

Stock kombu BRPOPs a message and records it in `unacked` afterwards; a message popped by a Redis that then
stops answering (frozen, crashed, shut down, a connection the worker gave up on) exists nowhere. A worker of
a make_app app instead fetches with one Redis script (fetch_lua.FETCH) that pops the first message of its
lists (same order as BRPOP: priority lists, `queue_order_strategy`) and, in the same operation, records it in
kombu's `unacked`/`unacked_index` (so the queue stats count it as reserved and a plain worker's
visibility-timeout restore still works) and in `queueworker:held` as held by this worker. When every list
is empty it waits with `BLMOVE list list RIGHT RIGHT` (the message stays where it is; Redis >= 6.2), then
fetches. So at every instant a message is in a queue, held by a named worker, or acknowledged.

Every worker refreshes a lease `queueworker:alive:{hostname}` (TTL = the heartbeat TTL) from a thread of its
main process until it exits. Each `unacked_restore_interval` the consumer loop sweeps (`QoS.sweep`):
- acknowledgements that could not reach Redis are sent again (only while this worker still holds the message);
- messages held by workers whose lease has expired are taken over (fetch_lua.CLAIM, atomic: exactly one
  recoverer each) and put back at the head of their queue, marked redelivered (redelivery cap);
- messages held by this worker that none of its channels holds any more (a fetch whose reply was lost, a
  channel closed while Redis was unreachable) are put back the same way.
A worker recovers others only after its own lease has been written without a failure for a whole TTL, so
after an outage of Redis itself every surviving worker renews its lease before anyone is declared dead.
Acks and restores check the holder: a worker cut off long enough to be recovered from does not acknowledge
or requeue what another worker now holds. What it was running when recovered from may run twice.

Processes that are not workers (producers, beat, `celery call`), Redis servers older than 6.2, a
`global_keyprefix`, synchronous `basic_get`, and QUEUEWORKER_ATOMIC_FETCH=0 (for comparisons) use stock
kombu. A plain `celery worker` consumes the same lists with stock BRPOP.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import weakref
from typing import Any

import redis
from celery import bootsteps, signals

from queueworker.worker import fetch_lua
from queueworker.worker.lease import LEASE

log = logging.getLogger(__name__)

SHAS = {
    script: hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest()
    for script in (fetch_lua.FETCH, fetch_lua.ACK, fetch_lua.RELEASE, fetch_lua.CLAIM)
}


def run_script(client: Any, script: str, keys: list[str], args: list[Any]) -> Any:
    try:
        return client.evalsha(SHAS[script], len(keys), *keys, *args)
    except redis.exceptions.NoScriptError:
        return client.eval(script, len(keys), *keys, *args)


#: Live channels of this process (the sweep asks them what they hold).
_CHANNELS: weakref.WeakSet[Any] = weakref.WeakSet()
#: Tags whose acknowledgement could not reach Redis; sent again by the next sweep.
_PENDING_ACKS: set[str] = set()
_pending_lock = threading.Lock()
#: Set when a warm shutdown begins: no new fetch, and a fetched message not handed over yet goes back.
STOPPING = threading.Event()


def holder() -> str | None:
    return LEASE.hostname


def mark_redelivered(payload: Any) -> None:
    try:
        payload["headers"]["redelivered"] = True
        payload["properties"]["delivery_info"]["redelivered"] = True
    except (KeyError, TypeError):
        pass


class Identity(bootsteps.Step):
    """Worker step: names this worker as the holder of what it fetches and starts its lease."""

    label = "QueueWorker atomic fetch"

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        STOPPING.clear()  # a new worker in this process (after an earlier one shut down) fetches again
        if enabled():
            LEASE.start(worker.app, str(worker.hostname))
        else:
            log.warning(
                "QUEUEWORKER_ATOMIC_FETCH=0: consuming with stock kombu (BRPOP, then record); a "
                "message popped just as Redis goes away can be lost"
            )


def enabled() -> bool:
    """QUEUEWORKER_ATOMIC_FETCH (default 1); 0 consumes the stock way, for comparisons."""
    from queueworker.worker.settings import current

    return current().atomic_fetch


def connect() -> None:
    """The stop flag from the moment a warm shutdown is asked for (before any step stops); the lease ends at
    worker_shutdown, once the pool has drained (a step cannot be declared to stop after the pool)."""
    signals.worker_shutting_down.connect(
        lambda how=None, **_: STOPPING.set() if how == "Warm" else None,
        weak=False,
        dispatch_uid="queueworker.fetch.stopping",
    )
    signals.worker_shutdown.connect(
        lambda **_: LEASE.end(), weak=False, dispatch_uid="queueworker.fetch.lease"
    )
