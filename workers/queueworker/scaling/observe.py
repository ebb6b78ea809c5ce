"""One QueueWorker's queue stats as one policy Observation (pure), for the operator and local mode.

Counts add up over the QueueWorker's queues. Worker figures do not: every worker of a QueueWorker
consumes all its queues and writes one heartbeat per queue, so busy/total slots and workers take the
largest queue's figure instead of counting each worker once per queue.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

from queueworker.scaling.policy import Observation


class QueueFigures(Protocol):
    """What the policy reads of one queue's stats (queueworker.broker.stats.QueueStats has them)."""

    @property
    def depth(self) -> int: ...
    @property
    def reserved(self) -> int: ...
    @property
    def oldest_wait(self) -> float | None: ...
    @property
    def workers(self) -> int: ...
    @property
    def busy_slots(self) -> int: ...
    @property
    def total_slots(self) -> int: ...
    @property
    def completed_total(self) -> int | None: ...


def observation(stats: Mapping[str, QueueFigures], queues: Iterable[str], now: float) -> Observation:
    rows = [stats[q] for q in queues if q in stats]
    waits = [r.oldest_wait for r in rows if r.oldest_wait is not None]
    completed = [r.completed_total for r in rows]
    return Observation(
        time=now,
        backlog=sum(r.depth for r in rows),
        reserved=sum(r.reserved for r in rows),
        busy_slots=max((r.busy_slots for r in rows), default=0),
        total_slots=max((r.total_slots for r in rows), default=0),
        workers=max((r.workers for r in rows), default=0),
        oldest_wait=max(waits) if waits else None,
        completed_total=None if any(c is None for c in completed) else sum(c or 0 for c in completed),
    )
