"""The one QoS of the platform's transport: kombu's Redis QoS with the atomic fetch's holder-checked ack,
reject and restore, the periodic sweep (worker/fetch.py describes the records), and the guards that keep a
lost broker connection from stopping the worker (kombu may ack, reject or restore through a channel a
reconnect already released: `connection.client` is None, an AttributeError Celery calls unrecoverable)."""

from __future__ import annotations

import logging
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps, loads

from queueworker.broker.keys import ALIVE_PREFIX, HELD_HASH
from queueworker.worker import fetch, fetch_lua
from queueworker.worker.lease import LEASE

log = logging.getLogger(__name__)


class QoS(kombu_redis.QoS):
    """kombu's QoS with holder-checked ack, reject and restore, and the periodic sweep."""

    _any_holder = False

    def _released(self) -> bool:
        return getattr(self.channel.connection, "client", None) is None

    def append(self, message: Any, delivery_tag: Any) -> None:
        if self.channel._qw_recorded:  # the fetch script already wrote unacked, unacked_index and held
            message.qw_held = True
            virtual.QoS.append(self, message, delivery_tag)
            return
        super().append(message, delivery_tag)

    def _atomic(self, delivery_tag: Any) -> bool:
        message = self._delivered.get(delivery_tag)
        return bool(getattr(message, "qw_held", False))

    # -- ack / reject ---------------------------------------------------------------------------------
    def ack(self, delivery_tag: Any) -> None:
        """Holder-checked; an ack through a channel a reconnect replaced is sent again by the next sweep of
        a live channel (if this worker still holds the message) instead of stopping the worker."""
        try:
            self._ack(delivery_tag)
        except (AttributeError, *self.channel.connection_errors):
            if not self._released():
                raise
            if self._atomic(delivery_tag):
                with fetch._pending_lock:
                    fetch._PENDING_ACKS.add(str(delivery_tag))
            log.warning(
                "could not acknowledge message %s now: its broker connection was replaced", delivery_tag
            )
            self._delivered.pop(delivery_tag, None)

    def _ack(self, delivery_tag: Any) -> None:
        me = self.channel.holder()
        if me is None or not self._atomic(delivery_tag):
            super().ack(delivery_tag)
            return
        try:
            self.ack_held(delivery_tag, me)
        except self.channel.connection_errors as exc:
            with fetch._pending_lock:
                fetch._PENDING_ACKS.add(str(delivery_tag))
            log.warning(
                "acknowledgement of %s not sent (%s); sent again when the broker answers",
                delivery_tag,
                type(exc).__name__,
            )
        virtual.QoS.ack(self, delivery_tag)

    def ack_held(self, delivery_tag: Any, me: str, client: Any = None) -> int:
        keys = [self.unacked_key, self.unacked_index_key, HELD_HASH]
        with self.channel.conn_or_acquire(client) as conn:
            done = int(fetch.run_script(conn, fetch_lua.ACK, keys, [delivery_tag, me]))
        if done == 0:
            log.warning(
                "message %s was recovered from this worker and is held by another one now; not "
                "acknowledged here",
                delivery_tag,
            )
        return done

    def reject(self, delivery_tag: Any, requeue: bool = False) -> None:
        """A reject after the channel was closed by a reconnect cannot stop the worker either: the message
        is still held by this worker (the sweep puts it back) or already back in its queue."""
        try:
            if requeue or self.channel.holder() is None or not self._atomic(delivery_tag):
                super().reject(delivery_tag, requeue=requeue)
            else:
                self._ack(delivery_tag)
        except (AttributeError, *self.channel.connection_errors):
            if not self._released():
                raise
            log.warning("could not reject message %s now: its broker connection was replaced", delivery_tag)
            self._delivered.pop(delivery_tag, None)

    # -- restore --------------------------------------------------------------------------------------
    def restore_unacked(self, client: Any = None) -> Any:
        """Restoring at close after a lost connection cannot stop the worker: those messages stay held by
        this worker and the next sweep puts them back (a stock record comes back after the visibility
        timeout)."""
        try:
            return super().restore_unacked(client)
        except (AttributeError, *self.channel.connection_errors) as exc:
            if isinstance(exc, AttributeError) and not self._released():
                raise
            log.warning(
                "could not restore %d unacked message(s) now (%s); they go back to their queue when "
                "the broker answers again",
                len(self._delivered),
                type(exc).__name__,
            )
            self._delivered.clear()
            return None

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
                fetch.mark_redelivered(payload)
            fetch.run_script(
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
        mine_channels = [ch for ch in list(fetch._CHANNELS) if ch.holder() == me]
        if me is None or any(ch._qw_pending == "fetch" and ch._in_poll for ch in mine_channels):
            return 0  # a fetch reply not read yet holds a message no channel knows of
        with self.channel.conn_or_acquire() as client:
            with fetch._pending_lock:
                pending = list(fetch._PENDING_ACKS)
            for tag in pending:
                self.ack_held(tag, me, client)
                with fetch._pending_lock:
                    fetch._PENDING_ACKS.discard(tag)
            if LEASE.steady():
                claimed = fetch.run_script(client, fetch_lua.CLAIM, [HELD_HASH], [me, ALIVE_PREFIX]) or []
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
            with fetch._pending_lock:
                delivered |= fetch._PENDING_ACKS
            orphans = [t for t in mine if t not in delivered]
            for tag in orphans:
                self.restore_by_tag(tag, client)
            if orphans:
                log.warning("put %d held message(s) back at the head of their queue", len(orphans))
            return len(orphans)
