"""The worker's health file, which `qw probe` reads: no broker round trip, no broadcast, answered in
milliseconds.

`{QUEUEWORKER_STATE_DIR or /tmp/queueworker}/worker.json`, rewritten atomically by the heartbeat thread
each interval (and at ready/shutdown):
  {"pid", "hostname", "started", "ready", "broker_ok": last successful Redis write (heartbeat),
   "loop_tick": last tick of the consumer's event loop, "liveness_max_age", "readiness_max_age"}
`broker_ok` goes stale when Redis is unreachable or hung; `loop_tick` when the consumer loop is stuck.
A long task changes neither. One worker per directory (QUEUEWORKER_STATE_DIR; local mode gives each its
own).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
import time
from typing import Any

from celery import bootsteps, signals

from queueworker.worker.health import health_path
from queueworker.worker.settings import current


def heartbeat_interval() -> float:
    return current().heartbeat_interval


class HealthRecord:
    """What the worker knows about its own health; one per worker process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.data: dict[str, Any] = {}

    def reset(self, hostname: str) -> None:
        now = time.time()
        settings = current()
        with self.lock:
            self.data = {
                "pid": os.getpid(),
                "hostname": hostname,
                "started": now,
                "ready": False,
                "broker_ok": None,
                "loop_tick": now,
                "liveness_max_age": settings.liveness_age,
                "readiness_max_age": settings.readiness_age,
            }

    def update(self, **fields: Any) -> None:
        with self.lock:
            self.data.update(fields)

    def write(self) -> None:
        with self.lock:
            if not self.data:
                return
            payload = json.dumps(self.data)
        path = health_path()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".worker-")
            with os.fdopen(fd, "w") as out:
                out.write(payload)
            os.replace(tmp, path)
        except OSError:
            pass  # probes will report the stale file; never break the worker over it

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            health_path().unlink()


HEALTH = HealthRecord()
#: Set when the worker is ready (consumer started): heartbeats start then, not before.
READY = threading.Event()


class LoopTick(bootsteps.StartStopStep):
    """Consumer step: a timer on the consumer's event loop records that the loop is turning."""

    label = "QueueWorker loop tick"
    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.tref: Any = None

    def start(self, c: Any) -> None:
        HEALTH.update(loop_tick=time.time())
        if c.timer is not None:
            self.tref = c.timer.call_repeatedly(max(0.5, heartbeat_interval() / 2), self.tick)

    @staticmethod
    def tick() -> None:
        HEALTH.update(loop_tick=time.time())

    def stop(self, c: Any) -> None:
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None

    shutdown = stop


def on_ready(sender: Any = None, **_: Any) -> None:
    HEALTH.update(ready=True, loop_tick=time.time())
    HEALTH.write()
    READY.set()


def on_shutdown(**_: Any) -> None:
    HEALTH.remove()


def connect() -> None:
    """Ready when Celery says so: from inside the event loop, which the consumer's last step (Evloop) runs
    and whose start never returns, so no step can follow it. The file goes at worker_shutdown, after every
    step stopped."""
    signals.worker_ready.connect(on_ready, weak=False, dispatch_uid="queueworker.healthfile.ready")
    signals.worker_shutdown.connect(on_shutdown, weak=False, dispatch_uid="queueworker.healthfile.down")
