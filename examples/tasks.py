"""The seed's example tasks on a make_app app: `celery -A tasks worker` with examples/ on PYTHONPATH.

taskA and taskB sleep a little to look like work: EXAMPLE_TASK_SECONDS (default 0.5) or the `seconds`
argument. Routes (examples/*.yaml) send taskA to queue for_task_A and taskB to for_task_B. `timed` sleeps
too, and appends its publish and start times to a Redis list (what `make bench-cluster` reads its waits
from).
"""

from __future__ import annotations

import functools
import json
import os
import time
from typing import Any

from queueworker import make_app
from queueworker.broker.client import connect
from queueworker.worker.stamps import published_at

app = make_app("tasks")


def _pause(seconds: float | None) -> float:
    delay = float(os.environ.get("EXAMPLE_TASK_SECONDS", "0.5")) if seconds is None else float(seconds)
    time.sleep(max(0.0, delay))
    return delay


@app.task(name="tasks.add")
def add(x: float, y: float) -> float:
    return x + y


@app.task(name="tasks.taskA")
def taskA(seconds: float | None = None) -> str:
    _pause(seconds)
    return "A done"


@app.task(name="tasks.taskB")
def taskB(seconds: float | None = None) -> str:
    _pause(seconds)
    return "B done"


@functools.cache
def _broker() -> Any:
    return connect(os.environ["QUEUEWORKER_BROKER_URL"])


@app.task(name="tasks.timed", bind=True)
def timed(self: Any, seconds: float, record: str) -> str:
    """Sleep `seconds`, then append {"published", "started", "finished"} (Unix seconds) to list `record`."""
    started = time.time()
    _pause(seconds)
    times = {"published": published_at(self.request), "started": started, "finished": time.time()}
    _broker().rpush(record, json.dumps(times))
    return "timed"
