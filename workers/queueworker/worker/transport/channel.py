"""The one Channel of the platform's transport, for every broker scheme (redis, rediss, sentinel):

- the atomic fetch (worker/fetch.py): one Redis script pops and records; `BLMOVE` waits when empty;
- the malformed-message guard (guard.py): an item kombu cannot read is dropped, kept and counted;
- durable publishes (durable.py): LPUSH and WAIT (or WAITAOF) in one round trip when the broker has
  replicas, batched publishes (kombu's Producer.batch) included: they are sent one by one then. Every
  publish of a make_app app (apply_async, delay, retry, send_task, groups and chords, beat, a kombu Producer
  on the app's connection) ends in `_put`. Fanout (`_put_fanout`: PUBLISH, Celery's broadcast and remote
  control) is pub/sub: Redis keeps nothing of it, so no replica could hold it, and it is not confirmed;
- sentinel mode: the connection pool asks the sentinels for the primary at every (re)connection (kombu's
  SentinelChannel), so a worker whose connection dropped finds the new primary;
- a pub/sub read that never blocks, and a released connection that raises a connection error (which
  Celery recovers from) instead of an AttributeError (which stops the worker).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import redis
from kombu.transport import redis as kombu_redis
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps, loads
from redis.sentinel import Sentinel

from queueworker.broker import failover
from queueworker.broker.keys import HELD_HASH, alive_key
from queueworker.worker import fetch, fetch_lua
from queueworker.worker.lease import LEASE
from queueworker.worker.transport import guard
from queueworker.worker.transport.durable import Durability
from queueworker.worker.transport.qos import QoS

log = logging.getLogger(__name__)


class Channel(kombu_redis.SentinelChannel):
    QoS = QoS

    from_transport_options = (  # type: ignore[assignment]
        *kombu_redis.SentinelChannel.from_transport_options,
        "qw_min_replicas",
        "qw_wait_timeout",
        "qw_waitaof",
        "qw_waitaof_timeout",
        "qw_sentinels",
    )
    qw_sentinels: list[list[Any]] | None = None
    qw_min_replicas = 1
    qw_wait_timeout = 1.0
    qw_waitaof = False
    qw_waitaof_timeout = 2.0

    _qw_recorded = False
    #: What the reply being awaited answers: "fetch" (the script), "wait" (BLMOVE), None (stock BRPOP).
    _qw_pending: str | None = None
    _qw_wait_next = False
    _qw_supported: bool | None = None
    #: The holder's name for this channel; None = this worker's hostname (set per channel in tests).
    qw_holder: str | None = None

    def __init__(self, connection: Any, **kwargs: Any) -> None:
        self.qw_sentinel = bool(getattr(connection, "qw_sentinel", False))
        if not self.qw_sentinel:  # a plain (or TLS) Redis: kombu's own connection classes
            self.connection_class = kombu_redis.Channel.connection_class  # type: ignore[assignment]
            self.connection_class_ssl = kombu_redis.Channel.connection_class_ssl  # type: ignore[assignment]
        super().__init__(connection, **kwargs)
        self.qw_durability = Durability(
            min_replicas=int(self.qw_min_replicas),
            timeout=float(self.qw_wait_timeout),
            always=self.qw_sentinel,
            aof=bool(self.qw_waitaof),
            aof_timeout=float(self.qw_waitaof_timeout),
        )
        fetch._CHANNELS.add(self)

    # -- connections ----------------------------------------------------------------------------------
    def _get_pool(self, asynchronous: bool = False) -> Any:
        if self.qw_sentinel:
            return super()._get_pool(asynchronous)
        return kombu_redis.Channel._get_pool(self, asynchronous)

    def _sentinel_managed_pool(self, asynchronous: bool = False) -> Any:
        """kombu's, with the sentinels from the transport option `qw_sentinels` (all of the URL's hosts)."""
        if not self.qw_sentinels:
            return super()._sentinel_managed_pool(asynchronous)
        params = dict(self._connparams(asynchronous))
        params.pop("host", None)
        params.pop("port", None)
        manager = Sentinel(
            [(str(h), int(p)) for h, p in self.qw_sentinels],
            min_other_sentinels=getattr(self, "min_other_sentinels", 0),
            sentinel_kwargs=getattr(self, "sentinel_kwargs", None),
            **params,
        )
        if asynchronous:  # kept so that kombu closes its connections to the sentinels (celery/kombu#1108)
            self._async_sentinel_manager = manager
        else:
            self._sentinel_manager = manager
        auth = {k: params[k] for k in ("username", "password") if k in params}
        given = params.get("connection_class")
        tls = (isinstance(given, type) and issubclass(given, redis.connection.SSLConnection)) or any(
            k == "ssl" or k.startswith("ssl_") for k in params
        )
        master = failover.master_for(manager, str(getattr(self, "master_name", "")), tls, **auth)
        return master.connection_pool

    def _connparams(self, asynchronous: bool = False) -> Any:
        if getattr(self.connection, "client", None) is None:
            raise redis.exceptions.ConnectionError("broker connection released; reconnecting")
        return super()._connparams(asynchronous)

    def _receive_one(self, c: Any) -> Any:
        return super()._receive_one(guard.NonBlockingPubSub(c))

    # -- publish --------------------------------------------------------------------------------------
    def _put(self, queue: str, message: Any, **kwargs: Any) -> None:
        with self.conn_or_acquire() as client:
            durability = self.qw_durability
            if not durability.wanted(client):
                super()._put(queue, message, **kwargs)
                return
            # Confirmed now, in this round trip. A batch (kombu's Producer.batch) would send the writes after
            # publish() returned, past any confirmation: while publishes are confirmed, a batched one is sent
            # at once like any other.
            kwargs.pop("_publish_batch", None)
            key = self._q_for_pri(queue, self._get_message_priority(message, reverse=False))
            pipe = client.pipeline(transaction=False)
            pipe.lpush(key, dumps(message))
            if self._expires and queue in self._expires:
                for p in self.priority_steps:
                    pipe.pexpire(self._q_for_pri(queue, p), self._expires[queue])
            command = durability.command(client)
            pipe.execute_command(*command)
            replies = pipe.execute(raise_on_error=False)
            for reply in replies[:-1]:  # the writes' own errors (e.g. a full noeviction Redis) as they are
                if isinstance(reply, Exception):
                    raise reply
            durability.check(replies[-1], queue, client, command)

    # -- the atomic fetch -----------------------------------------------------------------------------
    def holder(self) -> str | None:
        """This worker's hostname when the atomic fetch is in use, else None (stock kombu)."""
        me = self.qw_holder or fetch.holder()
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
        if fetch.STOPPING.is_set():
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
                fetch.SHAS[fetch_lua.FETCH],
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
        try:
            return self._fetch_read(**options)
        except (ValueError, RecursionError, LookupError, TypeError, AttributeError) as exc:
            # ValueError covers JSONDecodeError, UnicodeDecodeError and binascii.Error (bad base64 body);
            # RecursionError is JSON nested deeper than the parser's recursion limit.
            if not isinstance(exc, json.JSONDecodeError) and not guard.from_envelope(exc):
                raise
            queue = self._last_queue()
            raw = exc.doc[: guard.MALFORMED_KEEP_BYTES] if isinstance(exc, json.JSONDecodeError) else None
            guard.record_malformed(queue, raw, exc)
            if raw is not None:
                try:
                    with self.conn_or_acquire() as client:
                        guard.keep_malformed(client, queue, raw)
                except self.connection_errors:
                    pass
            raise kombu_redis.Empty() from None

    def _last_queue(self) -> str:
        items = getattr(self._queue_cycle, "items", None) or []
        return str(items[-1]) if items else "unknown"  # the reader rotates the popped queue last

    def _fetch_read(self, **options: Any) -> Any:
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
            if recorded and fetch.STOPPING.is_set():  # fetched as the warm shutdown began: back, not run
                self.qos.restore_by_tag(payload["properties"]["delivery_tag"], redelivered=False)
                raise kombu_redis.Empty()
            self._qw_recorded = bool(recorded)
            try:
                self.connection._deliver(payload, dest)
            except (ValueError, TypeError, LookupError, AttributeError, RecursionError):
                tag = payload["properties"]["delivery_tag"] if recorded else None
                if tag is not None and tag not in self.qos._delivered:  # not a message kombu can take:
                    self.qos.ack_held(tag, str(self.holder()))  # dropped (the guard), not kept
                raise
            finally:
                self._qw_recorded = False
            return True
        finally:
            self._in_poll = None  # type: ignore[assignment]
            self._flush_brpop_reauth()
