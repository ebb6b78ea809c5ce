"""This worker's lease `queueworker:alive:{hostname}`: while it is alive (written within the heartbeat
TTL), the messages the worker holds are its own; once it has expired, the atomic fetch's sweep (fetch.py)
takes them over. Written by a thread of the worker's main process, which outlives the heartbeat step:
a warm shutdown's running tasks stay held until the pool has drained."""

from __future__ import annotations

import contextlib
import logging
import threading
import time

import redis
from celery import Celery

from queueworker.broker.keys import alive_key
from queueworker.worker import brokerclient

log = logging.getLogger(__name__)


class Lease:
    """This worker's lease `queueworker:alive:{hostname}`, refreshed every heartbeat interval by a daemon
    thread until the worker has shut down (then deleted, so what it still holds is recovered at once)."""

    def __init__(self) -> None:
        self.hostname: str | None = None
        self.ttl = 20.0
        self.interval = 5.0
        self.contact_since: float | None = None  # monotonic time of the first write after the last failure
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        self.client: redis.Redis | None = None

    def start(self, app: Celery, hostname: str) -> None:
        from queueworker.worker.healthfile import heartbeat_interval
        from queueworker.worker.heartbeats import heartbeat_ttl

        self.hostname, self.ttl = hostname, heartbeat_ttl()
        self.interval = max(0.2, min(heartbeat_interval(), self.ttl / 4))
        self.client = brokerclient.client_for(app, timeout=min(5.0, max(1.0, self.interval)))
        if self.client is None or self.thread is not None:
            return
        self.stopping.clear()
        self.thread = threading.Thread(target=self.run, name="queueworker-lease", daemon=True)
        self.thread.start()

    def write(self) -> None:
        assert self.client is not None and self.hostname is not None
        try:
            self.client.set(alive_key(self.hostname), time.time(), px=int(self.ttl * 1000))
        except (redis.RedisError, OSError) as exc:
            self.contact_since = None
            log.debug("lease not written: %s", type(exc).__name__)
            return
        if self.contact_since is None:
            self.contact_since = time.monotonic()

    def run(self) -> None:
        while not self.stopping.is_set():
            self.write()
            self.stopping.wait(self.interval)

    def steady(self) -> bool:
        """True once the lease has been written without a failure for a whole TTL."""
        since = self.contact_since
        return since is not None and time.monotonic() - since >= self.ttl

    def end(self) -> None:
        if self.thread is None:
            return
        self.stopping.set()
        self.thread.join(timeout=5)
        self.thread = None
        if self.client is not None and self.hostname is not None:
            with contextlib.suppress(redis.RedisError, OSError):
                self.client.delete(alive_key(self.hostname))


#: The one lease of this worker process.
LEASE = Lease()
