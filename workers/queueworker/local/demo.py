"""The demo of `qw up --demo` (what `make run` shows): once the platform runs, publish a burst of tasks,
then watch workers scale up, the backlog drain, and workers scale back down; finish when every
QueueWorker is idle at its minimum again. `--burst COUNT:TASK[:ARGS_JSON]` sets the burst.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from queueworker.local.output import Output
from queueworker.local.publish import PublishError, load_routes, parse_arg, publish, resolve_queue
from queueworker.local.view import Row


@dataclass(frozen=True)
class Burst:
    count: int
    task: str
    args: tuple[Any, ...] = ()


def parse_burst(raw: str) -> Burst:
    """`COUNT:TASK[:ARGS_JSON]`, e.g. `200:tasks.taskA` or `100:tasks.add:[2, 3]`."""
    parts = raw.split(":", 2)
    if len(parts) < 2 or not parts[0].strip().isdigit() or not parts[1].strip():
        raise PublishError(f"--burst: expected COUNT:TASK[:ARGS_JSON] like 200:tasks.add:[2,3], got {raw!r}")
    args: tuple[Any, ...] = ()
    if len(parts) == 3:
        value = parse_arg(parts[2])
        if not isinstance(value, list):
            raise PublishError(f"--burst: ARGS_JSON must be a JSON list like [2, 3], got {parts[2]!r}")
        args = tuple(value)
    count = int(parts[0])
    if count < 1:
        raise PublishError(f"--burst: COUNT must be >= 1, got {count}")
    return Burst(count, parts[1].strip(), args)


@dataclass
class Demo:
    bursts: list[Burst]
    redis_url: str
    routes_file: Path
    out: Output
    until_idle: bool = True
    interval: float = 2.0
    sent_at: float | None = None
    sent: int = 0
    completed_start: dict[str, int] = field(default_factory=dict)
    completed_now: dict[str, int] = field(default_factory=dict)
    peak: dict[str, int] = field(default_factory=dict)
    scaled_up: bool = False
    drained_at: float | None = None
    drained_wall: float = 0.0
    done_at: float | None = None

    def send(self) -> None:
        routes = load_routes(self.routes_file)
        for burst in self.bursts:
            queue = resolve_queue(burst.task, None, routes, str(self.routes_file))
            publish(self.redis_url, burst.task, burst.args, {}, queue=queue, count=burst.count)
            self.sent += burst.count
            self.out.info(
                f"demo: published {burst.count} x {burst.task}({', '.join(map(repr, burst.args))}) "
                f"to queue {queue}",
                style="bold magenta",
            )
        self.sent_at = time.monotonic()

    def step(self, rows: list[Row], broker_up: bool) -> bool:
        """Called each tick; returns True when the demo is over."""
        if not broker_up:
            return False
        for r in rows:
            self.peak[r.name] = max(self.peak.get(r.name, 0), r.running or 0)
            if r.completed is not None:
                self.completed_start.setdefault(r.name, r.completed)
                self.completed_now[r.name] = r.completed
        if self.sent_at is None:
            # Publish once the minimum workers are up, so the scale-up is the burst's doing.
            if all((r.running or 0) >= (r.desired or 0) for r in rows):
                try:
                    self.send()
                except PublishError as exc:
                    self.out.info(f"demo: {exc}", style="bold red")
                    return True
            return False
        if any((r.running or 0) > (r.min_replicas or 0) for r in rows):
            self.scaled_up = True
        idle = all(r.backlog == 0 and not r.reserved and not r.busy_slots for r in rows)
        if idle and self.drained_at is None:
            self.drained_at = time.monotonic()
            self.drained_wall = time.time()
            self.out.info(
                f"demo: backlog drained in {self.drained_at - self.sent_at:.1f}s; workers scale down "
                "after the scale-down delay",
                style="bold magenta",
            )
        if not idle:
            return False
        steady = all(r.running == r.desired and not r.stopping for r in rows)
        at_floor = all(r.desired == _floor(r) for r in rows)
        # A policy may stop above the floor (e.g. while its rate averages decay): once the scale-down delay
        # has passed again with no change, the scale-down is over.
        delay = max((r.scale_down_delay or 0.0) for r in rows) if rows else 0.0
        since = max(self.drained_wall, *(r.last_scale.at for r in rows if r.last_scale is not None))
        quiet = time.time() - since > delay + 2 * self.interval
        if self.drained_at is None or not steady:
            return False
        if self.until_idle and (at_floor or quiet):
            self.done_at = time.monotonic()
            return True
        return False

    def progress(self) -> str:
        if self.sent_at is None:
            return "demo: starting workers"
        if self.drained_at is None:
            return f"demo: {self.sent} tasks published, draining"
        return "demo: drained, waiting for the scale-down"

    def report(self) -> None:
        done = sum(self.completed_now.get(k, 0) - v for k, v in self.completed_start.items())
        peaks = ", ".join(f"{k} {v}" for k, v in sorted(self.peak.items()))
        summary: dict[str, Any] = {"published": self.sent, "completed": done, "peak_workers": self.peak}
        if self.sent_at is not None and self.drained_at is not None:
            summary["drain_seconds"] = round(self.drained_at - self.sent_at, 1)
        self.out.info(
            f"demo: {self.sent} published, {done} completed; peak workers: {peaks}; "
            f"summary {json.dumps(summary)}",
            style="bold magenta",
        )


def _floor(row: Row) -> int | None:
    if row.mode == "off":
        return row.desired
    return row.min_replicas
