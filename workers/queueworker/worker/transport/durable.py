"""Acknowledged means durable: a publish through the platform's transport returns only once
`min_replicas` replicas hold the message (`WAIT` in the same round trip as the LPUSH), when the broker
has replicas. Otherwise it raises `NotReplicatedError`, a connection error, so kombu reconnects (in
sentinel mode: to the primary the sentinels name now) and the publish is tried again, up to
QUEUEWORKER_PUBLISH_RETRY_SECONDS (worker/app.py).

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

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._known: dict[int, tuple[float, int]] = {}  # id(pool) -> (checked at, connected replicas)

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

    def check(self, confirmed: int, queue: str, client: Any) -> None:
        if confirmed >= self.min_replicas:
            return
        with self._lock:
            self._known.pop(id(client.connection_pool), None)  # read the replica count again next time
        raise NotReplicatedError(
            f"publish to queue {queue!r} not acknowledged: {confirmed} of {self.min_replicas} required "
            f"replica(s) confirmed it within {self.timeout:g}s (QUEUEWORKER_PUBLISH_MIN_REPLICAS, "
            "QUEUEWORKER_PUBLISH_WAIT_TIMEOUT); it is published again through the current primary"
        )
