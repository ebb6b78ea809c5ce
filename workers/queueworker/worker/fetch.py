"""The atomic fetch: no message exists only in a worker's socket, whatever Redis or the network does.

Stock kombu BRPOPs a message and records it in `unacked` afterwards; a message popped by a Redis that then
stops answering (frozen, crashed, shut down, a connection the worker gave up on) exists nowhere. A worker of
a make_app app instead fetches with one Redis script (fetch_lua.FETCH) that pops the first message of its
lists (same order as BRPOP: priority lists, `queue_order_strategy`) and, in the same operation, records it in
kombu's `unacked`/`unacked_index` (so the probe counts it as reserved and a plain worker's visibility-timeout
restore still works) and in `queueworker:held` as held by this worker. When every list is empty it waits with
`BLMOVE list list RIGHT RIGHT` (the message stays where it is; Redis >= 6.2), then fetches. So at every
instant a message is in a queue, held by a named worker, or acknowledged.

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
import os
import threading
import time
import weakref
from typing import Any

import redis
from celery import Celery, bootsteps, signals
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps, loads

from queueworker.broker.keys import ALIVE_PREFIX, HELD_HASH, alive_key
from queueworker.worker import fetch_lua
from queueworker.worker.lease import LEASE

log = logging.getLogger(__name__)

_SHAS = {
    script: hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest()
    for script in (fetch_lua.FETCH, fetch_lua.ACK, fetch_lua.RELEASE, fetch_lua.CLAIM)
}


def run_script(client: Any, script: str, keys: list[str], args: list[Any]) -> Any:
    try:
        return client.evalsha(_SHAS[script], len(keys), *keys, *args)
    except redis.exceptions.NoScriptError:
        return client.eval(script, len(keys), *keys, *args)


#: Live channels of this process (the sweep asks them what they hold).
_CHANNELS: weakref.WeakSet[Channel] = weakref.WeakSet()
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


class QoS(kombu_redis.QoS):
    """kombu's QoS with holder-checked ack, reject and restore, and the periodic sweep."""

    _any_holder = False

    def append(self, message: Any, delivery_tag: Any) -> None:
        if self.channel._qw_recorded:  # the fetch script already wrote unacked, unacked_index and held
            message.qw_held = True
            virtual.QoS.append(self, message, delivery_tag)
            return
        super().append(message, delivery_tag)

    def _atomic(self, delivery_tag: Any) -> bool:
        message = self._delivered.get(delivery_tag)
        return bool(getattr(message, "qw_held", False))

    def ack(self, delivery_tag: Any) -> None:
        me = self.channel.holder()
        if me is None or not self._atomic(delivery_tag):
            super().ack(delivery_tag)
            return
        try:
            self.ack_held(delivery_tag, me)
        except self.channel.connection_errors as exc:
            with _pending_lock:
                _PENDING_ACKS.add(str(delivery_tag))
            log.warning(
                "acknowledgement of %s not sent (%s); sent again when the broker answers",
                delivery_tag,
                type(exc).__name__,
            )
        virtual.QoS.ack(self, delivery_tag)

    def ack_held(self, delivery_tag: Any, me: str, client: Any = None) -> int:
        keys = [self.unacked_key, self.unacked_index_key, HELD_HASH]
        with self.channel.conn_or_acquire(client) as conn:
            done = int(run_script(conn, fetch_lua.ACK, keys, [delivery_tag, me]))
        if done == 0:
            log.warning(
                "message %s was recovered from this worker and is held by another one now; not "
                "acknowledged here",
                delivery_tag,
            )
        return done

    def reject(self, delivery_tag: Any, requeue: bool = False) -> None:
        if requeue or self.channel.holder() is None or not self._atomic(delivery_tag):
            super().reject(delivery_tag, requeue=requeue)
            return
        self.ack(delivery_tag)

    def restore_by_tag(
        self, tag: Any, client: Any = None, leftmost: bool = False, *, redelivered: bool = True
    ) -> None:
        me = self.channel.holder()
        if me is None:
            super().restore_by_tag(tag, client=client, leftmost=leftmost)
            return
        with self.channel.conn_or_acquire(client) as conn:
            raw, held = conn.pipeline().hget(self.unacked_key, tag).hget(HELD_HASH, tag).execute()
            if held is None:
                if not self._atomic(tag):  # recorded by stock kombu (or before an upgrade)
                    super().restore_by_tag(tag, client=conn, leftmost=leftmost)
                return  # acknowledged or recovered already
            owner, _, source = bytes_to_str(held).partition("\n")
            if raw is None or not source:
                if owner == me or self._any_holder:
                    conn.hdel(HELD_HASH, tag)
                return
            payload, _exchange, _routing_key = loads(bytes_to_str(raw))
            if redelivered:
                mark_redelivered(payload)
            run_script(
                conn,
                fetch_lua.RELEASE,
                [self.unacked_key, self.unacked_index_key, HELD_HASH, source],
                [tag, "" if self._any_holder else me, raw, dumps(payload), "1" if leftmost else "0"],
            )

    def restore_visible(self, start: int = 0, num: int = 10, interval: int = 10) -> Any:
        if self.channel.holder() is not None:
            try:
                self.sweep()
            except self.channel.connection_errors:
                raise
            except Exception:  # never let a sweep stop the worker
                log.exception("sweep of held messages failed")
        self._any_holder = True  # past the visibility timeout: whoever held it, it goes back
        try:
            return super().restore_visible(start, num, interval)
        finally:
            self._any_holder = False

    def sweep(self) -> int:
        """Resend failed acks, recover dead workers' messages, release this worker's orphans."""
        me = self.channel.holder()
        mine_channels = [ch for ch in list(_CHANNELS) if ch.holder() == me]
        if me is None or any(ch._qw_pending == "fetch" and ch._in_poll for ch in mine_channels):
            return 0  # a fetch reply not read yet holds a message no channel knows of
        with self.channel.conn_or_acquire() as client:
            with _pending_lock:
                pending = list(_PENDING_ACKS)
            for tag in pending:
                self.ack_held(tag, me, client)
                with _pending_lock:
                    _PENDING_ACKS.discard(tag)
            if LEASE.steady():
                claimed = run_script(client, fetch_lua.CLAIM, [HELD_HASH], [me, ALIVE_PREFIX]) or []
                if claimed:
                    log.warning(
                        "recovering %d message(s) held by worker(s) whose lease expired", len(claimed)
                    )
            prefix = me + "\n"
            mine = [
                bytes_to_str(t)
                for t, v in client.hgetall(HELD_HASH).items()
                if bytes_to_str(v).startswith(prefix)
            ]
            if not mine:
                return 0
            delivered = {str(t) for ch in mine_channels for t in list(ch.qos._delivered)}
            with _pending_lock:
                delivered |= _PENDING_ACKS
            orphans = [t for t in mine if t not in delivered]
            for tag in orphans:
                self.restore_by_tag(tag, client)
            if orphans:
                log.warning("put %d held message(s) back at the head of their queue", len(orphans))
            return len(orphans)


class Channel(kombu_redis.Channel):
    QoS = QoS

    _qw_recorded = False
    #: What the reply being awaited answers: "fetch" (the script), "wait" (BLMOVE), None (stock BRPOP).
    _qw_pending: str | None = None
    _qw_wait_next = False
    _qw_supported: bool | None = None
    #: The holder's name for this channel; None = this worker's hostname (set per channel in tests).
    qw_holder: str | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _CHANNELS.add(self)

    def holder(self) -> str | None:
        """This worker's hostname when the atomic fetch is in use, else None (stock kombu)."""
        me = self.qw_holder or holder()
        if me is None or self.global_keyprefix or self._qw_supported is False:
            return None
        return me

    def _check_server(self) -> bool:
        if self._qw_supported is None:
            version = str(self.client.info("server").get("redis_version", "0"))
            parts = [int(p) for p in version.split(".")[:2] if p.isdigit()]
            self._qw_supported = tuple(parts) >= (6, 2)
            if not self._qw_supported:
                log.warning(
                    "Redis %s has no BLMOVE (6.2+): consuming with BRPOP, without the atomic fetch", version
                )
        return self._qw_supported

    def _brpop_start(self, timeout: Any = None) -> Any:
        me = self.holder()
        if me is None or not self._check_server():
            return super()._brpop_start(timeout)
        if STOPPING.is_set():
            return None  # a warm shutdown began: fetch nothing more
        if timeout is None:
            timeout = self.brpop_timeout
        queues = self._queue_cycle.consume(len(self.active_queues))
        if not queues:
            return None
        lists = [self._q_for_pri(queue, pri) for pri in self.priority_steps for queue in queues]
        if self._qw_wait_next:
            command: list[Any] = ["BLMOVE", lists[0], lists[0], "RIGHT", "RIGHT", timeout or 0]
            self._qw_pending = "wait"
        else:
            keys = [self.unacked_key, self.unacked_index_key, HELD_HASH, alive_key(me), *lists]
            command = [
                "EVALSHA",
                _SHAS[fetch_lua.FETCH],
                len(keys),
                *keys,
                me,
                time.time(),
                int(LEASE.ttl * 1000),
            ]
            self._qw_pending = "fetch"
        self._in_poll = self.client.connection
        self._brpop_sent_at = time.monotonic()  # type: ignore[assignment]
        self.client.connection.send_command(*command)
        return None

    def _brpop_read(self, **options: Any) -> Any:
        pending = self._qw_pending
        if pending is None:
            return super()._brpop_read(**options)
        self._qw_pending = None
        try:
            try:
                reply = self.client.parse_response(self.client.connection, pending.upper(), **options)
            except self.connection_errors:
                self.client.connection.disconnect()
                raise
            except redis.exceptions.NoScriptError:
                self.client.script_load(fetch_lua.FETCH)
                raise kombu_redis.Empty() from None
            except redis.exceptions.ResponseError as exc:  # e.g. a full noeviction Redis refusing writes
                log.warning("fetch refused by Redis (%s); trying again in 1s", exc)
                self._qw_wait_next = False
                time.sleep(1.0)
                raise kombu_redis.Empty() from None
            if pending == "wait":
                self._qw_wait_next = False  # a message arrived (or the wait timed out): fetch
                raise kombu_redis.Empty()
            if not reply:
                self._qw_wait_next = True
                raise kombu_redis.Empty()
            source, item, recorded = reply
            dest = bytes_to_str(source).rsplit(self.sep, 1)[0]
            self._queue_cycle.rotate(dest)
            payload = loads(bytes_to_str(item))
            if recorded and STOPPING.is_set():  # fetched as the warm shutdown began: back, not run here
                self.qos.restore_by_tag(payload["properties"]["delivery_tag"], redelivered=False)
                raise kombu_redis.Empty()
            self._qw_recorded = bool(recorded)
            try:
                self.connection._deliver(payload, dest)
            except (ValueError, TypeError, LookupError, AttributeError, RecursionError):
                tag = payload["properties"]["delivery_tag"] if recorded else None
                if tag is not None and tag not in self.qos._delivered:  # not a message kombu can take:
                    self.qos.ack_held(tag, str(self.holder()))  # dropped (worker/transport.py), not kept
                raise
            finally:
                self._qw_recorded = False
            return True
        finally:
            self._in_poll = None  # type: ignore[assignment]
            self._flush_brpop_reauth()


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
    raw = os.environ.get("QUEUEWORKER_ATOMIC_FETCH", "1").strip().lower()
    if raw not in ("1", "0", "true", "false", "yes", "no", ""):
        raise ValueError(f"QUEUEWORKER_ATOMIC_FETCH={raw!r}: use 1 (default) or 0")
    return raw not in ("0", "false", "no")


def install(app: Celery) -> None:
    app.steps["worker"].add(Identity)
    signals.worker_shutting_down.connect(
        lambda how=None, **_: STOPPING.set() if how == "Warm" else None,
        weak=False,
        dispatch_uid="queueworker.fetch.stopping",
    )
    signals.worker_shutdown.connect(
        lambda **_: LEASE.end(), weak=False, dispatch_uid="queueworker.fetch.lease"
    )
