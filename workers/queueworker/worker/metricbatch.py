"""Per-process batching of metric updates: tasks add to plain dicts, a thread writes the sums every second.

In prometheus-client's multiprocess mode every `inc()`/`observe()` takes a lock and writes an mmapped
file, several times per task; on a busy worker that is measurable throughput. Here a task's updates cost
a dict update under one lock (`add` counts and observes at once); a daemon thread per process (started on
first use, again in each forked pool child: an at-fork hook resets the child, no per-call pid check) adds
the sums to the real metrics every QUEUEWORKER_METRICS_FLUSH_INTERVAL seconds (default 1), a histogram's
observations as one update per touched bucket. A scrape lags by at most that interval. `flush()` runs at
process exit too (pool child exit, worker shutdown), so nothing counted is lost.
"""

from __future__ import annotations

import bisect
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

Key = tuple[str, str, str]  # (metric, task name, queue)


def flush_interval() -> float:
    try:
        from queueworker.worker.settings import current

        return max(0.05, current().metrics_flush_interval)
    except ValueError:
        return 1.0


def observe_many(histogram: Any, values: list[float]) -> None:
    """Add many observations with one write per touched bucket (falls back to observe() each)."""
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for value in values:
            histogram.observe(value)
        return
    per_bucket: dict[int, int] = {}
    for value in values:
        index = min(bisect.bisect_left(bounds, value), len(bounds) - 1)
        per_bucket[index] = per_bucket.get(index, 0) + 1
    total.inc(sum(values))
    for index, n in per_bucket.items():
        buckets[index].inc(n)


class Batcher:
    def __init__(self, resolve: Callable[[str, str, str], Any]) -> None:
        self.resolve = resolve
        self.running = False  # this process's flush thread runs
        self.lock = threading.Lock()
        self.counts: dict[Key, float] = {}
        self.observations: dict[Key, list[float]] = {}
        os.register_at_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        # In a forked child (a prefork pool process) the parent's pending updates are the parent's to
        # write, its flush thread is gone, and a lock that thread held at fork time would stay held.
        self.running = False
        self.lock = threading.Lock()
        self.counts = {}
        self.observations = {}

    def _start(self) -> None:
        self.running = True
        threading.Thread(target=self._run, name="queueworker-metrics-flush", daemon=True).start()

    def inc(self, key: Key) -> None:
        self.add(key, None, 0.0)

    def add(self, counter: Key | None, histogram: Key | None, value: float) -> None:
        """Count one event on `counter` and observe `value` on `histogram` (either may be None)."""
        if not self.running:
            self._start()
        with self.lock:
            if counter is not None:
                self.counts[counter] = self.counts.get(counter, 0.0) + 1.0
            if histogram is not None:
                found = self.observations.get(histogram)
                if found is None:
                    self.observations[histogram] = [value]
                else:
                    found.append(value)

    def _run(self) -> None:
        interval = flush_interval()
        lock = self.lock
        while self.lock is lock:  # a fork replaces the lock: this thread belongs to the parent
            time.sleep(interval)
            self.flush()

    def flush(self) -> None:
        with self.lock:
            counts, self.counts = self.counts, {}
            observations, self.observations = self.observations, {}
        for key, n in counts.items():
            try:
                self.resolve(*key).inc(n)
            except Exception:  # metrics never break the worker
                log.debug("metric %s not written", key, exc_info=True)
        for key, values in observations.items():
            try:
                observe_many(self.resolve(*key), values)
            except Exception:
                log.debug("metric %s not written", key, exc_info=True)
