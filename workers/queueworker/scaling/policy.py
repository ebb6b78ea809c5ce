"""The builtin autoscaling policy: pure (no clock, no I/O), shared by the operator, local mode and bench/.

Each tick the caller passes the previous `PolicyState`, one `Observation` of the queue (or `None` when the
broker is unreachable) and the replicas it runs now; `decide` returns a `Decision` with the replicas to
run and the state to pass next time.

The recommendation follows Little's law. Tasks in the system are `backlog + max(reserved, busy)`, so the
tasks that arrived over a tick are those completed plus the change in that number; the mean service time
is busy slot-seconds per completion (over `service_window_seconds`). The arrival rate is a moving average
over `rate_window_seconds`, restarted when a faster average leaves it by more than `change_sigmas` of
Poisson noise (a burst starting or ending). The slots needed are the larger of two terms:

- keep-up: arrival rate x service time / target_utilization, the rate taken `confidence` deviations of
  its Poisson noise low, so that noise alone neither adds replicas nor holds them through the
  scale-down window;
- backlog (wait.py): only while tasks wait. It projects, at the measured rate, the queue left when
  a replica asked for now could be ready (`start_delay_seconds`): the backlog plus what arrives until
  then, less what the current slots start meanwhile (the start delay is the measured one, see
  Observation.start_seconds, else `start_delay_seconds`). A task that a finishing one will start needs no
  new replica. When, with the current replicas, the task queued at that moment would wait longer than
  `target_wait_seconds`, or the tasks arriving over the next `scale_down_delay_seconds` (the least a new
  replica will run) would wait longer than `planned_wait_fraction` of the target on average, it asks for
  the fewest replicas that bring both back within bounds (never more than one slot per task); else it
  asks for nothing more than the current replicas, which a scale-down keeps for the delay anyway.

The waits are planned near, not far below, the target: a burst's backlog is drained over the time the
new replicas are kept, not at once. Until a service time has been measured (or while it measures 0: no
heartbeat saw a task running), every waiting task asks for a slot. Nothing queued or running asks for no
replica (a decaying arrival average alone does not).

Rules: up at once when tasks wait and more slots are needed, at most
`max(max_step_up, current x max_step_up_percent %)` replicas per decision;
down only when every recommendation of the last `scale_down_delay_seconds` was lower than the replicas
running, and then to the highest of them, but never below the workers running tasks (busy_workers:
removing one would cut its tasks short, so idle ones go and busy ones stay); zero only when nothing is
queued, reserved or running; at least one replica as soon as a task waits; always within [min_replicas,
max_replicas]; no observation means hold.
"""

from __future__ import annotations

import math
from dataclasses import replace

from queueworker.scaling.model import Decision, Direction, Observation, PolicyConfig, PolicyState
from queueworker.scaling.wait import backlog_slots

__all__ = ["Decision", "Direction", "Observation", "PolicyConfig", "PolicyState", "decide", "service_seconds"]

#: Decayed completions needed before the service time counts as known.
_MIN_SERVED = 1.0


def _in_system(obs: Observation) -> int:
    return obs.backlog + max(obs.reserved, obs.busy_slots)


def _update_rates(config: PolicyConfig, state: PolicyState, obs: Observation) -> tuple[PolicyState, str]:
    """Fold one observation into the decayed sums; returns the new state and a note (may be "")."""
    prev = state.last
    state = replace(state, last=obs)
    if prev is None or obs.time <= prev.time or obs.completed_total is None or prev.completed_total is None:
        return state, ""
    if obs.completed_total < prev.completed_total:
        return state, "completion counter reset"
    dt = obs.time - prev.time
    done = obs.completed_total - prev.completed_total
    arrived = done + _in_system(obs) - _in_system(prev)
    rate = math.exp(-dt / config.rate_window_seconds)
    fast = math.exp(-dt / config.fast_rate_window_seconds)
    slow = math.exp(-dt / config.service_window_seconds)
    busy = (prev.busy_slots + obs.busy_slots) / 2 * dt
    state = replace(
        state,
        arrived=state.arrived * rate + arrived,
        done=state.done * rate + done,
        seconds=state.seconds * rate + dt,
        seconds_sq=state.seconds_sq * rate * rate + dt,
        arrived_fast=state.arrived_fast * fast + arrived,
        seconds_fast=state.seconds_fast * fast + dt,
        seconds_sq_fast=state.seconds_sq_fast * fast * fast + dt,
        busy_seconds=state.busy_seconds * slow + busy,
        served=state.served * slow + done,
        service_span=state.service_span * slow + dt,
    )
    if _rate_changed(config, state):
        # A burst started or ended: what came before the last tick says nothing about the new rate.
        restart = replace(
            state,
            arrived=arrived,
            done=done,
            seconds=dt,
            seconds_sq=dt,
            arrived_fast=arrived,
            seconds_fast=dt,
            seconds_sq_fast=dt,
        )
        return restart, "arrival rate changed"
    return state, ""


def _rate_changed(config: PolicyConfig, state: PolicyState) -> bool:
    """Whether the fast arrival average is further from the slow one than Poisson noise explains."""
    slow = max(state.arrived / state.seconds, 0.0)
    fast = max(state.arrived_fast / state.seconds_fast, 0.0)
    # Noise of the fast average if the rate were still the slow one (at least one task per window).
    null_rate = max(slow, 1 / config.fast_rate_window_seconds)
    sd_null = math.sqrt(null_rate * state.seconds_sq_fast) / state.seconds_fast
    return abs(fast - slow) > config.change_sigmas * sd_null


def service_seconds(config: PolicyConfig, state: PolicyState) -> float | None:
    """Mean service time: busy slot-seconds per completed task; None until a task has completed."""
    if state.served < _MIN_SERVED or state.last is None:
        return None
    # While the window fills, running tasks count with about half their time but not yet as completed;
    # once it is full, the running tasks at both of its ends balance out.
    filling = max(0.0, 1.0 - state.service_span / config.service_window_seconds)
    return state.busy_seconds / (state.served + filling * state.last.busy_slots / 2)


def _arrival_rate(config: PolicyConfig, state: PolicyState) -> float:
    """The arrival rate to plan for: the average less `confidence` deviations of its Poisson noise."""
    if state.seconds <= 0:
        return 0.0
    rate = max(state.arrived / state.seconds, 0.0)
    sd = math.sqrt(rate * state.seconds_sq) / state.seconds
    return max(rate - config.confidence * sd, 0.0)


def _needed_slots(
    config: PolicyConfig, state: PolicyState, obs: Observation, current: int
) -> tuple[float, str]:
    """Slots the queue needs now, and the human explanation."""
    backlog = obs.backlog
    target = config.target_wait_seconds
    service = service_seconds(config, state)
    arrival = _arrival_rate(config, state)
    if service is None or service <= 0:
        # Not known yet, or 0: tasks finished but no heartbeat saw one running (shorter than heartbeats
        # resolve). Either way the queue is the evidence: every waiting task asks for a slot.
        slots = float(obs.busy_slots + backlog)
        known = "not known yet" if service is None else "too short to measure"
        why = f"{backlog} waiting, {obs.busy_slots} busy, service time {known}"
    else:
        steady = arrival * service / config.target_utilization
        drain, more = backlog_slots(config, state, obs, current, service)
        slots = max(steady, drain)
        why = f"{backlog} waiting, arrival {arrival:.2f}/s x service {service:.1f}s -> {steady:.1f} slots"
        why += more
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


def _clamped(config: PolicyConfig, state: PolicyState, current: int, recommended: int, why: str) -> Decision:
    """Hold the current replicas, or bring them within [min_replicas, max_replicas] at once."""
    replicas = min(max(current, config.min_replicas), config.max_replicas)
    if replicas == current:
        return Decision(current, recommended, f"hold: {why}", state, "hold")
    direction: Direction = "up" if replicas > current else "down"
    bounds = f"[{config.min_replicas}, {config.max_replicas}]"
    if state.last is not None:
        state = replace(state, last_scale_time=state.last.time)
    return Decision(replicas, recommended, f"scale {direction}: {why}; clamped to {bounds}", state, direction)


def decide(
    config: PolicyConfig, state: PolicyState, observation: Observation | None, current_replicas: int
) -> Decision:
    """The replicas to run for one queue now. See the module docstring for the rules."""
    current = max(current_replicas, 0)
    if observation is None:
        # Never scale on missing data; the scale-down window restarts when data comes back.
        held = replace(state, last=None, window=(), since=None)
        return _clamped(config, held, current, current, f"broker unreachable: holding {current} replicas")
    obs = observation
    if obs.start_seconds is not None and obs.start_seconds >= 0:
        state = replace(state, start_seconds=obs.start_seconds)
    state, note = _update_rates(config, state, obs)
    slots, why = _needed_slots(config, state, obs, current)
    if note:
        why += f" ({note})"
    work = obs.backlog > 0 or obs.reserved > 0 or obs.busy_slots > 0
    if not work:
        # Nothing queued or running: a decaying arrival average alone must not hold a replica.
        slots = 0.0
    recommended = math.ceil(slots / config.slots_per_replica - 1e-9)
    wanted = max(recommended, 1) if work else recommended
    target = min(max(wanted, config.min_replicas), config.max_replicas)

    delay = config.scale_down_delay_seconds
    since = obs.time if state.since is None else min(state.since, obs.time)
    window = _push_window(state.window, obs.time, target, delay)
    state = replace(state, window=window, since=since)

    if current > config.max_replicas or current < config.min_replicas:
        return _clamped(config, state, current, recommended, why)
    if target > current and (current == 0 or obs.backlog > 0):
        step = max(config.max_step_up, math.ceil(current * config.max_step_up_percent / 100.0))
        replicas = min(target, current + step)
        bounded = " (bounded step)" if replicas < target else ""
        state = replace(state, last_scale_time=obs.time, last_up_time=obs.time)
        return Decision(replicas, recommended, f"scale up: {why}{bounded}", state, "up")
    if target < current:
        window_max = window[0][1]
        covered = obs.time - since >= delay
        floor = max(window_max, obs.busy_workers)
        if covered and floor < current:
            state = replace(state, last_scale_time=obs.time)
            reason = f"scale down: {why}; all recommendations of the last {delay:.0f}s <= {window_max}"
            if floor > window_max:
                reason += f"; {obs.busy_workers} workers running tasks stay"
            return Decision(floor, recommended, reason, state, "down")
        if covered and window_max < current:
            why += f"; {obs.busy_workers} of {current} workers running tasks: none idle to remove"
        else:
            blockers = [t for t, v in window if v >= current]
            left = (max(blockers) if blockers else since) + delay - obs.time
            why += f"; {left:.0f}s more below {current} before scaling down"
    elif target > current:
        why += "; no task waiting"
    elif wanted > config.max_replicas:
        why += f"; at maxReplicas {config.max_replicas}"
    return Decision(current, recommended, f"hold: {why}", state, "hold")
