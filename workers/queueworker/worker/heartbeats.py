"""Heartbeats: per queue, a Redis record of this worker's live, busy and total slots (keys.heartbeat_key).

A thread in the worker's main process writes, every QUEUEWORKER_HEARTBEAT_INTERVAL (default
keys.HEARTBEAT_INTERVAL), for each queue it consumes: HSET heartbeats:{queue} {hostname} JSON
{"hostname", "pid", "busy", "total", "processed", "ts"}, EXPIRE the hash HEARTBEAT_TTL, HDEL fields older
than HEARTBEAT_TTL (dead workers), and INCRBY completed:{queue} with the tasks of that queue it finished
since the last write. busy = requests running in the pool, total = concurrency. On shutdown it HDELs
its fields and flushes the completions so far, and flushes again at worker_shutdown, once the pool has
drained (the tasks a warm shutdown let finish). QUEUEWORKER_HEARTBEAT_TTL shortens the TTL (tests).
A successful write is the probes' "broker contact".

Finished per queue = requests received from it (task_received, main process) minus those still held
(received, reserved or running), so counting costs nothing per task.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import Counter
from typing import Any

import redis
from celery import bootsteps, signals
from celery.worker import state as worker_state

from queueworker.broker.keys import completed_key, heartbeat_key
from queueworker.worker import brokerclient
from queueworker.worker.healthfile import HEALTH, READY, heartbeat_interval
from queueworker.worker.settings import current
from queueworker.worker.stamps import queue_of

log = logging.getLogger(__name__)

_received: Counter[str] = Counter()


def on_received(request: Any = None, **_: Any) -> None:
    if request is not None:
        _received[queue_of(request)] += 1


def heartbeat_ttl() -> float:
    return current().heartbeat_ttl


def finished_by_queue() -> Counter[str]:
    held = Counter(queue_of(r) for r in list(worker_state.reserved_requests))
    return Counter({q: n - held.get(q, 0) for q, n in list(_received.items())})


class Heartbeats(bootsteps.StartStopStep):
    """Worker step running the heartbeat thread: after the fetch identity (a worker announced by a heartbeat
    holds its lease already) and the pool (its concurrency is the record's `total`)."""

    label = "QueueWorker heartbeats"
    requires = ("queueworker.worker.fetch:Identity", "celery.worker.components:Pool")

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        self.reported: Counter[str] = Counter()
        self.worker: Any = None
        self.queues: list[str] = []

    def start(self, worker: Any) -> None:
        self.worker = worker
        self.queues = sorted(worker.app.amqp.queues.consume_from or worker.app.amqp.queues)
        HEALTH.reset(worker.hostname)
        HEALTH.write()
        self.client = brokerclient.client_for(worker.app, timeout=min(5.0, max(1.0, heartbeat_interval())))
        self.thread = threading.Thread(target=self.run, name="queueworker-heartbeats", daemon=True)
        self.thread.start()
        uid = f"queueworker.heartbeats.drained.{id(self)}"
        signals.worker_shutdown.connect(self.after_drain, weak=False, dispatch_uid=uid)

    def record(self, finished: Counter[str]) -> dict[str, Any]:
        worker = self.worker
        return {
            "hostname": worker.hostname,
            "pid": os.getpid(),
            "busy": len(worker_state.active_requests),
            "total": int(worker.concurrency or 0),
            "processed": max(0, sum(finished.values())),
            "ts": time.time(),
        }

    def beat(self) -> None:
        if self.client is None:  # not a Redis broker: nothing to write, nothing to check
            HEALTH.update(broker_ok=time.time())
            return
        finished = finished_by_queue()
        record = self.record(finished)
        now = record["ts"]
        ttl = heartbeat_ttl()
        pipe = self.client.pipeline(transaction=False)
        for queue in self.queues:
            key = heartbeat_key(queue)
            pipe.hset(key, record["hostname"], json.dumps(record))
            pipe.expire(key, max(1, int(ttl)))
            delta = finished.get(queue, 0) - self.reported.get(queue, 0)
            if delta > 0:
                pipe.incrby(completed_key(queue), delta)
            pipe.hgetall(key)
        results = pipe.execute()
        for queue in self.queues:
            self.reported[queue] = max(self.reported.get(queue, 0), finished.get(queue, 0))
        stale_pipe = self.client.pipeline(transaction=False)
        stale = 0
        for queue, entries in zip(self.queues, [r for r in results if isinstance(r, dict)], strict=False):
            for field, raw in entries.items():
                try:
                    ts = float(json.loads(raw).get("ts", 0))
                except (ValueError, TypeError, AttributeError):
                    ts = 0.0
                if now - ts > ttl:
                    stale_pipe.hdel(heartbeat_key(queue), field)
                    stale += 1
        if stale:
            stale_pipe.execute()
        HEALTH.update(broker_ok=time.time())

    def run(self) -> None:
        interval = heartbeat_interval()
        while not READY.wait(0.1):
            if self.stopping.is_set():
                return
        while not self.stopping.is_set():
            try:
                self.beat()
            except (redis.RedisError, OSError) as exc:
                log.warning("heartbeat not written: %s", type(exc).__name__)
            except Exception:
                log.exception("heartbeat failed")
            HEALTH.write()
            self.stopping.wait(interval)

    def stop(self, worker: Any) -> None:
        if self.thread is None:
            return
        self.stopping.set()
        self.thread.join(timeout=10)
        self.thread = None
        self.flush(remove=[worker.hostname])

    def flush(self, remove: list[str] | None = None) -> None:
        """Report completions not reported yet (and HDEL the `remove` fields)."""
        if self.client is None:
            return
        try:
            finished = finished_by_queue()
            pipe = self.client.pipeline(transaction=False)
            for queue in self.queues:
                for field in remove or ():
                    pipe.hdel(heartbeat_key(queue), field)
                delta = finished.get(queue, 0) - self.reported.get(queue, 0)
                if delta > 0:
                    pipe.incrby(completed_key(queue), delta)
            pipe.execute()
            for queue in self.queues:
                self.reported[queue] = max(self.reported.get(queue, 0), finished.get(queue, 0))
        except (redis.RedisError, OSError) as exc:
            log.warning("completions or heartbeat not written at shutdown: %s", type(exc).__name__)

    def after_drain(self, **_: Any) -> None:
        """worker_shutdown comes once the pool has drained: this step stops before the pool does, so the
        tasks a warm shutdown let finish are counted here."""
        self.flush()

    shutdown = stop


def connect() -> None:
    """Each received request counted per queue (task-level, in the consumer)."""
    signals.task_received.connect(on_received, weak=False, dispatch_uid="queueworker.heartbeats.received")
