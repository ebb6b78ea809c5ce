"""Acknowledged means durable: a publish through the platform's transport returns only once
`min_replicas` replicas hold the message, when the broker has replicas. The confirmation goes in the same
round trip as the LPUSH:

- with QUEUEWORKER_PUBLISH_WAITAOF=1 (off by default, for the latency below): `WAITAOF 0 <min_replicas>
  <timeout>` (the replicas have written the message to their append-only file and fsynced it) when the
  primary has the command (Redis or Valkey reporting 7.2 or later) and runs with appendonly on. Read once
  per connection pool (INFO server and persistence), and again after a confirmation failed (the primary
  may have changed). Every data node is assumed to run with the same appendonly: a replica without it
  never confirms a WAITAOF. Under `appendfsync everysec` (the chart's) a replica fsyncs once a second, so
  a WAITAOF returns at the replicas' next fsync, up to about a second after the LPUSH:
  QUEUEWORKER_PUBLISH_WAITAOF_TIMEOUT (2 s) bounds it;
- `WAIT <min_replicas> <timeout>` (the replicas have received it) otherwise, bounded by
  QUEUEWORKER_PUBLISH_WAIT_TIMEOUT.

A confirmation short of `min_replicas` raises `NotReplicatedError`, a connection error naming the replica
count, the command and its timeout, so kombu reconnects (in sentinel mode: to the primary the sentinels name
now) and the publish is tried again, up to QUEUEWORKER_PUBLISH_RETRY_SECONDS (worker/app.py).

"Has replicas": always in sentinel mode (a failover promotes a replica, so an unreplicated write can be
lost); on a plain Redis when its primary reports connected replicas (INFO replication, read again every
REPLICA_CHECK_INTERVAL seconds). A standalone Redis without replicas pays nothing.

Why it matters: replication is asynchronous. A primary frozen past a failover answers its clients'
pending writes when it resumes, after the sentinels have promoted a replica that never received them;
those writes vanish when it is demoted. With WAIT they fail instead: the demoted primary has no replica.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import redis

#: Seconds between two reads of a plain Redis's replica count.
REPLICA_CHECK_INTERVAL = 5.0


class NotReplicatedError(redis.exceptions.ConnectionError):
    """A publish that no replica confirmed in time: not acknowledged (kombu retries it)."""


@dataclass
class Durability:
    """The publish policy of one transport: how many replicas must confirm, within how long."""

    min_replicas: int = 1
    timeout: float = 1.0
    always: bool = False  # sentinel mode: every publish waits
    aof: bool = False  # WAITAOF where the primary has it and appendonly is on (QUEUEWORKER_PUBLISH_WAITAOF)
    aof_timeout: float = 2.0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._known: dict[int, tuple[float, int]] = {}  # id(pool) -> (checked at, connected replicas)
        self._aof: dict[int, bool] = {}  # id(pool) -> the primary confirms with WAITAOF

    def replicas(self, client: Any) -> int | None:
        """The primary's connected replicas (cached), or None when it cannot be read now."""
        key = id(client.connection_pool)
        now = time.monotonic()
        with self._lock:
            known = self._known.get(key)
        if known is not None and now - known[0] < REPLICA_CHECK_INTERVAL:
            return known[1]
        try:
            count = int(client.info("replication").get("connected_slaves", 0) or 0)
        except redis.exceptions.ResponseError:
            return None
        with self._lock:
            self._known[key] = (now, count)
        return count

    def wanted(self, client: Any) -> bool:
        if self.min_replicas <= 0:
            return False
        if self.always:
            return True
        return bool(self.replicas(client))

    def uses_aof(self, client: Any) -> bool:
        """Whether publishes through `client`'s pool confirm with WAITAOF (read once per pool)."""
        if not self.aof:
            return False
        key = id(client.connection_pool)
        with self._lock:
            known = self._aof.get(key)
        if known is None:
            known = has_waitaof(client)
            with self._lock:
                self._aof[key] = known
        return known

    def command(self, client: Any) -> list[Any]:
        """The confirmation to pipeline after the publish's writes."""
        if self.uses_aof(client):
            return ["WAITAOF", 0, self.min_replicas, int(self.aof_timeout * 1000)]
        return ["WAIT", self.min_replicas, int(self.timeout * 1000)]

    @staticmethod
    def confirmed(reply: Any) -> int:
        """Replicas that confirmed: WAIT's integer, or the second of WAITAOF's [local, replicas]."""
        if isinstance(reply, list | tuple):
            return int(reply[1])
        return int(reply)

    def forget(self, client: Any) -> None:
        """Read the replica count and the primary's WAITAOF support again next time."""
        key = id(client.connection_pool)
        with self._lock:
            self._known.pop(key, None)
            self._aof.pop(key, None)

    def check(self, reply: Any, queue: str, client: Any, command: list[Any]) -> None:
        if isinstance(reply, redis.exceptions.ResponseError):  # e.g. WAITAOF on a primary without it
            self.forget(client)
            raise NotReplicatedError(
                f"publish to queue {queue!r} not acknowledged: {command[0]} refused ({reply}); it is "
                "published again through the current primary"
            )
        confirmed = self.confirmed(reply)
        if confirmed >= self.min_replicas:
            return
        self.forget(client)
        aof = command[0] == "WAITAOF"
        what = "fsynced it to their append-only file" if aof else "confirmed it"
        timeout = self.aof_timeout if aof else self.timeout
        variable = "QUEUEWORKER_PUBLISH_WAITAOF_TIMEOUT" if aof else "QUEUEWORKER_PUBLISH_WAIT_TIMEOUT"
        raise NotReplicatedError(
            f"publish to queue {queue!r} not acknowledged: {confirmed} of {self.min_replicas} required "
            f"replica(s) {what} within {timeout:g}s ({command[0]}; QUEUEWORKER_PUBLISH_MIN_REPLICAS, "
            f"{variable}); it is published again through the current primary"
        )


def has_waitaof(client: Any) -> bool:
    """The primary has WAITAOF (it reports Redis 7.2 or later; Valkey reports 7.2.4) and appendonly is on."""
    try:
        version = str(client.info("server").get("redis_version", "0"))
        aof = int(client.info("persistence").get("aof_enabled", 0) or 0)
    except redis.exceptions.ResponseError:  # INFO refused (an ACL): WAIT, which needs nothing more
        return False
    parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    return parts >= (7, 2) and aof == 1
