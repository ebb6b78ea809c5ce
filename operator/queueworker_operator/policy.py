"""The builtin autoscaling policy: pure (no clock, no I/O), shared by the operator, local mode and bench/.

Each tick the caller passes the previous `PolicyState`, one `Observation` of the queue (or `None` when the
broker is unreachable) and the replicas it runs now; `decide` returns a `Decision` with the replicas to
run and the state to pass next time.

The recommendation follows Little's law. Tasks in the system are `backlog + max(reserved, busy)`, so
arrivals over a tick are the tasks completed plus the change in that number; the mean service time is
busy slots / completion rate. Both rates are time-weighted moving averages. The slots needed are

    arrival rate x service time            (what keeps up with new work)
  + backlog x service time / drain horizon (what drains the queue within the wait target)

where the drain horizon is what is left of `target_wait_seconds` for the oldest waiting task, and the
drain term never asks for more slots than there are waiting tasks. Until a service time has been seen,
every waiting task asks for a slot.

Rules: up at once, at most `max(max_step_up, current x max_step_up_percent %)` replicas per decision;
down only when every recommendation of the last `scale_down_delay_seconds` was lower than the replicas
running, and then to the highest of them; zero only when nothing is queued, reserved or running; at
least one replica as soon as a task waits; always within [min_replicas, max_replicas]; no observation
means hold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from queueworker.spec import QueueWorkerSpec

Direction = Literal["up", "down", "hold"]

#: Rates below this (tasks/s) count as no traffic.
_EPSILON = 1e-9
#: The drain horizon never drops below this fraction of the wait target.
_MIN_HORIZON_FRACTION = 0.1


@dataclass(frozen=True)
class PolicyConfig:
    """Knobs of the policy. The defaults are the QueueWorker spec's defaults and what bench/ measures."""

    min_replicas: int = 1
    max_replicas: int = 10
    target_wait_seconds: float = 30.0
    scale_down_delay_seconds: float = 300.0
    #: Worker slots per replica: the QueueWorker's concurrency.
    slots_per_replica: int = 2
    #: Bounded step up per decision: at least this many replicas ...
    max_step_up: int = 4
    #: ... or this percentage of the current replicas, whichever is larger.
    max_step_up_percent: float = 100.0
    #: Time constant (seconds) of the moving averages of arrival rate, completion rate and busy slots.
    rate_window_seconds: float = 20.0
    #: Fraction of the slots the steady arrival term may keep busy (headroom for bursts within a tick).
    target_utilization: float = 0.9

    def __post_init__(self) -> None:
        problems = []
        if self.min_replicas < 0:
            problems.append(f"min_replicas must be >= 0 (got {self.min_replicas})")
        if self.max_replicas < max(self.min_replicas, 1):
            problems.append(f"max_replicas must be >= max(min_replicas, 1) (got {self.max_replicas})")
        if self.target_wait_seconds <= 0:
            problems.append(f"target_wait_seconds must be > 0 (got {self.target_wait_seconds})")
        if self.scale_down_delay_seconds < 0:
            problems.append(f"scale_down_delay_seconds must be >= 0 (got {self.scale_down_delay_seconds})")
        if self.slots_per_replica < 1:
            problems.append(f"slots_per_replica must be >= 1 (got {self.slots_per_replica})")
        if self.max_step_up < 1:
            problems.append(f"max_step_up must be >= 1 (got {self.max_step_up})")
        if self.max_step_up_percent < 0:
            problems.append(f"max_step_up_percent must be >= 0 (got {self.max_step_up_percent})")
        if self.rate_window_seconds <= 0:
            problems.append(f"rate_window_seconds must be > 0 (got {self.rate_window_seconds})")
        if not 0 < self.target_utilization <= 1:
            problems.append(f"target_utilization must be in (0, 1] (got {self.target_utilization})")
        if problems:
            raise ValueError("; ".join(problems))

    @classmethod
    def from_spec(cls, spec: QueueWorkerSpec, **overrides: float) -> PolicyConfig:
        """The policy of a QueueWorker: spec.autoscaling's bounds, target and delay; concurrency as slots."""
        a = spec.autoscaling
        values: dict[str, float] = {
            "min_replicas": a.min_replicas,
            "max_replicas": a.max_replicas,
            "target_wait_seconds": a.target_wait_seconds,
            "scale_down_delay_seconds": a.scale_down_delay_seconds,
            "slots_per_replica": spec.concurrency,
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Observation:
    """One reading of a queue, as the probe gives it."""

    time: float  # seconds on the caller's clock (monotonic is best)
    backlog: int  # queued messages, all priority lists
    reserved: int = 0  # delivered but not acknowledged (prefetched or running with acks_late)
    busy_slots: int = 0  # slots running a task, from worker heartbeats
    total_slots: int = 0  # slots of live workers, from worker heartbeats
    workers: int = 0  # live workers
    oldest_wait: float | None = None  # seconds the oldest queued task has waited
    completed_total: int | None = None  # monotonic counter of finished tasks (may reset)


@dataclass(frozen=True)
class PolicyState:
    """What `decide` remembers between ticks. `PolicyState()` is the initial state; treat it as opaque."""

    last: Observation | None = None
    arrival_rate: float | None = None  # tasks/s, moving average
    completion_rate: float | None = None  # tasks/s, moving average
    busy_avg: float | None = None  # slots, moving average
    service_seconds: float | None = None  # last known mean service time
    #: Recommendations of the scale-down window as (time, replicas), times increasing and replicas
    #: strictly decreasing, so the first entry is the window's maximum.
    window: tuple[tuple[float, int], ...] = ()
    #: Time of the first observation of the current unbroken run (None: no run yet, e.g. after an outage).
    since: float | None = None
    last_scale_time: float | None = None


@dataclass(frozen=True)
class Decision:
    replicas: int  # what to run, within [min_replicas, max_replicas]
    recommended: int  # the raw recommendation, before bounds, step and delay
    reason: str
    state: PolicyState = field(repr=False)
    direction: Direction = "hold"


def _ewma(previous: float | None, value: float, dt: float, tau: float) -> float:
    if previous is None:
        return value
    alpha = 1.0 - math.exp(-dt / tau)
    return previous + alpha * (value - previous)


def _in_system(obs: Observation) -> int:
    return obs.backlog + max(obs.reserved, obs.busy_slots)


def _update_rates(config: PolicyConfig, state: PolicyState, obs: Observation) -> tuple[PolicyState, str]:
    """Fold one observation into the moving averages; returns the new state and a note (may be "")."""
    prev = state.last
    note = ""
    arrival, completion, busy = state.arrival_rate, state.completion_rate, state.busy_avg
    if prev is not None and obs.time > prev.time:
        dt = obs.time - prev.time
        tau = config.rate_window_seconds
        busy = _ewma(busy, float(obs.busy_slots), dt, tau)
        if obs.completed_total is not None and prev.completed_total is not None:
            if obs.completed_total >= prev.completed_total:
                done = (obs.completed_total - prev.completed_total) / dt
                arrived = max(0.0, done + (_in_system(obs) - _in_system(prev)) / dt)
                completion = _ewma(completion, done, dt, tau)
                arrival = _ewma(arrival, arrived, dt, tau)
            else:
                note = "completion counter reset"
    elif prev is None:
        busy = float(obs.busy_slots)
    service = state.service_seconds
    if completion is not None and busy is not None and completion > _EPSILON and busy > _EPSILON:
        service = busy / completion
    new = replace(
        state, last=obs, arrival_rate=arrival, completion_rate=completion, busy_avg=busy,
        service_seconds=service,
    )
    return new, note


def _needed_slots(config: PolicyConfig, state: PolicyState, obs: Observation) -> tuple[float, str]:
    """Slots the queue needs now, and the human explanation."""
    backlog = obs.backlog
    target = config.target_wait_seconds
    horizon = target
    if obs.oldest_wait is not None and backlog > 0:
        horizon = max(target - obs.oldest_wait, target * _MIN_HORIZON_FRACTION)
    service = state.service_seconds
    arrival = state.arrival_rate or 0.0
    if service is None:
        slots = float(obs.busy_slots + backlog)
        why = f"{backlog} waiting, {obs.busy_slots} busy, service time not known yet"
    else:
        steady = arrival * service / config.target_utilization
        drain = min(float(backlog), backlog * service / horizon)
        slots = max(steady + drain, float(obs.busy_slots))
        why = (
            f"{backlog} waiting, arrival {arrival:.2f}/s x service {service:.1f}s"
            f" -> {slots:.1f} slots"
        )
    if obs.oldest_wait is not None and backlog > 0:
        rel = ">" if obs.oldest_wait > target else "<="
        why += f", oldest {obs.oldest_wait:.0f}s {rel} target {target:.0f}s"
    return slots, why


def _push_window(
    window: tuple[tuple[float, int], ...], now: float, value: int, horizon: float
) -> tuple[tuple[float, int], ...]:
    """Add a recommendation to the sliding-maximum window and drop what fell out of it."""
    kept = [(t, v) for t, v in window if t >= now - horizon and v > value]
    kept.append((now, value))
    return tuple(kept)


def _hold(config: PolicyConfig, state: PolicyState, current: int, reason: str) -> Decision:
    replicas = min(max(current, config.min_replicas), config.max_replicas)
    direction: Direction = "up" if replicas > current else "down" if replicas < current else "hold"
    if direction != "hold":
        reason += f"; clamped to [{config.min_replicas}, {config.max_replicas}]"
        state = replace(state, last_scale_time=state.last.time if state.last else state.last_scale_time)
    return Decision(replicas, current, reason, state, direction)


def decide(
    config: PolicyConfig, state: PolicyState, observation: Observation | None, current_replicas: int
) -> Decision:
    """The replicas to run for one queue now. See the module docstring for the rules."""
    current = max(current_replicas, 0)
    if observation is None:
        # Never scale on missing data; the scale-down window restarts when data comes back.
        held = replace(state, last=None, window=(), since=None)
        return _hold(config, held, current, f"broker unreachable: holding {current} replicas")
    obs = observation
    state, note = _update_rates(config, state, obs)
    slots, why = _needed_slots(config, state, obs)
    if note:
        why += f" ({note})"
    work = obs.backlog > 0 or obs.reserved > 0 or obs.busy_slots > 0
    recommended = math.ceil(slots / config.slots_per_replica - 1e-9)
    wanted = max(recommended, 1) if work else recommended
    target = min(max(wanted, config.min_replicas), config.max_replicas)

    delay = config.scale_down_delay_seconds
    since = obs.time if state.since is None else min(state.since, obs.time)
    window = _push_window(state.window, obs.time, target, delay)
    state = replace(state, window=window, since=since)

    if current > config.max_replicas or current < config.min_replicas:
        return _hold(config, state, current, why)
    if target > current:
        step = max(config.max_step_up, math.ceil(current * config.max_step_up_percent / 100.0))
        replicas = min(target, current + step)
        bounded = " (bounded step)" if replicas < target else ""
        state = replace(state, last_scale_time=obs.time)
        return Decision(replicas, recommended, f"scale up: {why}{bounded}", state, "up")
    if target < current:
        window_max = window[0][1]
        covered = obs.time - since >= delay
        if covered and window_max < current:
            state = replace(state, last_scale_time=obs.time)
            reason = f"scale down: {why}; all recommendations of the last {delay:.0f}s <= {window_max}"
            return Decision(window_max, recommended, reason, state, "down")
        return Decision(current, recommended, f"hold: {why}; waiting {delay:.0f}s before scaling down",
                        state, "hold")
    if wanted > config.max_replicas:
        why += f"; at maxReplicas {config.max_replicas}"
    return Decision(current, recommended, f"hold: {why}", state, "hold")
