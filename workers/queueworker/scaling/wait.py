"""Projected waits of queued tasks, and the backlog term of the builtin policy built on them (pure).

The waiting tasks start in order (one FIFO list) as slots free up. With every slot busy, slots free up
at `slots / service` per second (the mean service time: which running task ends first is not known).
Until a replica asked for now is ready (`start_delay`), the slots are those running now, then those of
the replicas already starting. A task that one of them starts in that time needs no new replica.

What a new replica can still change is the wait of the tasks queued when it is ready: the backlog, plus
what arrives until then, less what the current slots start meanwhile. A task arriving at that moment
waits for all of them to start first: `waiting x service / slots`, the projected wait the policy plans.

The start delay is the one measured on this queue's workers (pod creation to Ready in the operator,
process start to ready in local mode) once the caller has measured one, else the configured default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from queueworker.scaling.model import Observation, PolicyConfig, PolicyState


@dataclass(frozen=True)
class Capacity:
    """The slots that start waiting tasks over the next seconds, before any new replica is ready."""

    free: float  # idle slots now: they take a waiting task at once
    live: float  # slots of running replicas (busy and free)
    starting: float  # slots of replicas created but not consuming yet ...
    starting_at: float  # ... from this many seconds on
    start_delay: float  # seconds from asking for a replica to its first task

    def started_by_delay(self, service: float) -> float:
        """Tasks the current replicas start before a replica asked for now is ready."""
        d = self.start_delay
        first = min(self.starting_at, d)
        return self.free + (self.live * first + (self.live + self.starting) * (d - first)) / service


def waiting_when_ready(backlog: int, arrival: float, cap: Capacity, service: float) -> float:
    """Tasks still queued when a replica asked for now is ready to take one."""
    return max(backlog + arrival * cap.start_delay - cap.started_by_delay(service), 0.0)


def projected_wait(waiting: float, service: float, slots: float) -> float:
    """Seconds a task queued behind `waiting` others waits with `slots` busy slots (fluid, FIFO)."""
    if waiting <= 0:
        return 0.0
    return waiting * service / slots if slots > 0 else float("inf")


def mean_wait(waiting: float, arrival: float, service: float, slots: float, horizon: float) -> float:
    """Mean projected wait of the tasks arriving over `horizon` seconds from when a new replica would be
    ready, with `slots` slots: the queue then drains, or grows, at `slots / service - arrival` per second."""
    if slots <= 0:
        return float("inf")
    drain = slots / service - arrival
    if drain > 0 and waiting <= drain * horizon:  # empty before the horizon: waits fall to zero
        return waiting * service / slots / 2 * (waiting / drain) / horizon
    return max(waiting - drain * horizon / 2, 0.0) * service / slots


@dataclass(frozen=True)
class Plan:
    """The bounds a queue's projected waits are held to, for a number of replicas."""

    waiting: float  # tasks queued when a new replica could be ready
    arrival: float  # tasks/s arriving from then on
    service: float  # mean service time, seconds
    slots_per_replica: int
    target: float  # no task queued then may wait longer than this ...
    planned: float  # ... and the tasks arriving over `horizon` seconds no longer than this on average
    horizon: float

    def late(self, replicas: int) -> bool:
        slots = float(replicas * self.slots_per_replica)
        return (
            projected_wait(self.waiting, self.service, slots) > self.target
            or mean_wait(self.waiting, self.arrival, self.service, slots, self.horizon) > self.planned
        )

    def fewest(self, late: int, most: int) -> int:
        """The fewest replicas above `late` (late ones) within bounds; `most` (or late + 1) if none is."""
        lo, hi = late, max(most, late + 1)
        while hi - lo > 1:  # the waits only fall as replicas are added: binary search
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if self.late(mid) else (lo, mid)
        return hi


def start_delay(config: PolicyConfig, state: PolicyState) -> float:
    """Seconds from asking for a replica to its first task: as measured, else the configured default."""
    return config.start_delay_seconds if state.start_seconds is None else state.start_seconds


def capacity(config: PolicyConfig, state: PolicyState, obs: Observation, current: int) -> Capacity:
    """The slots that start waiting tasks before a replica asked for now could: live and starting ones."""
    asked = current * config.slots_per_replica
    live = min(max(obs.total_slots, obs.busy_slots), asked)
    busy = min(max(obs.busy_slots, obs.reserved), live)
    delay = start_delay(config, state)
    starting_at = delay
    if state.last_up_time is not None:
        starting_at = min(max(delay - (obs.time - state.last_up_time), 0.0), delay)
    return Capacity(
        free=live - busy, live=live, starting=asked - live, starting_at=starting_at, start_delay=delay
    )


def backlog_slots(
    config: PolicyConfig, state: PolicyState, obs: Observation, current: int, service: float
) -> tuple[float, str]:
    """Slots the queued tasks ask for beyond the current replicas' (0 when those are enough)."""
    if obs.backlog <= 0 or service <= 0:  # a service time of 0 is handled by the caller
        return 0.0, ""
    target, per = config.target_wait_seconds, config.slots_per_replica
    arrival = state.arrival_rate or 0.0  # the queue is evidence enough: no noise margin here
    cap = capacity(config, state, obs, current)
    plan = Plan(
        waiting=waiting_when_ready(obs.backlog, arrival, cap, service),
        arrival=arrival,
        service=service,
        slots_per_replica=per,
        target=target,
        planned=config.planned_wait_fraction * target,
        horizon=max(config.scale_down_delay_seconds, target),  # a replica added now runs at least this long
    )
    projected = projected_wait(plan.waiting, service, current * per)
    why = f", {plan.waiting:.0f} queued in {cap.start_delay:.0f}s: projected wait {projected:.0f}s"
    if not plan.late(current):
        # The current replicas start the backlog soon enough, and a scale-down waits for the delay.
        return 0.0, why
    replicas = plan.fewest(current, config.max_replicas)
    slots = min(float(replicas * per), float(obs.backlog + max(obs.busy_slots, obs.reserved)))  # 1 per task
    return slots, f"{why} -> {slots:.0f} slots"
