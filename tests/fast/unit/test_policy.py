"""The builtin autoscaling policy, rule by rule, with constructed observations."""

from __future__ import annotations

import dataclasses

import pytest
from queueworker.api.spec import Autoscaling, QueueWorkerSpec
from queueworker.scaling.policy import (
    Decision,
    Observation,
    PolicyConfig,
    PolicyState,
    decide,
    service_seconds,
)
from queueworker.scaling.wait import Capacity, Plan, mean_wait, projected_wait, waiting_when_ready

TICK = 5.0


def obs(
    t: float,
    backlog: int = 0,
    busy: int = 0,
    completed: int | None = 0,
    *,
    reserved: int | None = None,
    total: int = 0,
    oldest: float | None = None,
) -> Observation:
    return Observation(
        time=t,
        backlog=backlog,
        reserved=busy if reserved is None else reserved,
        busy_slots=busy,
        total_slots=max(total, busy),
        workers=0,
        oldest_wait=oldest,
        completed_total=completed,
    )


def steady(
    config: PolicyConfig,
    rate: float,
    service: float,
    seconds: float,
    current: int,
    state: PolicyState | None = None,
    start: float = 0.0,
    done: float = 0.0,
    log: list[Decision] | None = None,
) -> tuple[Decision, float, float]:
    """Feed `seconds` of a queue that keeps up: `rate` tasks/s finish, `rate x service` slots busy."""
    state = state or PolicyState()
    t = start
    busy = round(rate * service)
    decision = decide(config, state, obs(t, busy=busy, completed=int(done)), current)
    while t < start + seconds - 1e-9:
        t += TICK
        done += rate * TICK
        decision = decide(config, decision.state, obs(t, busy=busy, completed=int(done)), decision.replicas)
        if log is not None:
            log.append(decision)
    return decision, t, done


def test_defaults_are_the_spec_defaults() -> None:
    a, spec = Autoscaling(), QueueWorkerSpec(app="x:app", queues=("q",))
    c = PolicyConfig()
    assert (c.min_replicas, c.max_replicas) == (a.min_replicas, a.max_replicas)
    assert c.target_wait_seconds == a.target_wait_seconds
    assert c.scale_down_delay_seconds == a.scale_down_delay_seconds
    assert c.slots_per_replica == spec.concurrency
    assert PolicyConfig.from_spec(spec) == c


def test_from_spec_maps_fields_and_overrides() -> None:
    spec = QueueWorkerSpec(
        app="x:app",
        queues=("q",),
        concurrency=8,
        autoscaling=Autoscaling(
            min_replicas=0, max_replicas=20, target_wait_seconds=12, scale_down_delay_seconds=60
        ),
    )
    c = PolicyConfig.from_spec(spec, scale_down_delay_seconds=5)
    assert (c.min_replicas, c.max_replicas, c.slots_per_replica) == (0, 20, 8)
    assert (c.target_wait_seconds, c.scale_down_delay_seconds) == (12, 5)


@pytest.mark.parametrize(
    "bad",
    [
        {"min_replicas": -1},
        {"min_replicas": 5, "max_replicas": 3},
        {"max_replicas": 0},
        {"target_wait_seconds": 0},
        {"slots_per_replica": 0},
        {"max_step_up": 0},
        {"target_utilization": 1.5},
        {"rate_window_seconds": 0},
        {"scale_down_delay_seconds": -1},
    ],
)
def test_impossible_configs_are_rejected(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        PolicyConfig(**bad)  # type: ignore[arg-type]


def test_unreachable_broker_holds() -> None:
    d = decide(PolicyConfig(), PolicyState(), None, 7)
    assert (d.replicas, d.direction) == (7, "hold")
    assert "unreachable" in d.reason


def test_unreachable_broker_still_applies_new_bounds() -> None:
    d = decide(PolicyConfig(max_replicas=4), PolicyState(), None, 7)
    assert (d.replicas, d.direction) == (4, "down")


def test_outage_restarts_the_scale_down_window() -> None:
    config = PolicyConfig(scale_down_delay_seconds=60)
    d = decide(config, PolicyState(), obs(0), 5)
    for t in range(5, 50, 5):
        d = decide(config, d.state, obs(t), d.replicas)
    d = decide(config, d.state, None, d.replicas)
    d = decide(config, d.state, obs(70), d.replicas)
    assert (d.replicas, d.direction) == (5, "hold")  # 70 s of idleness, but not 60 s of data since the outage
    for t in range(75, 135, 5):
        d = decide(config, d.state, obs(t), d.replicas)
    assert d.replicas == 1 and d.direction in ("down", "hold")


def test_from_zero_as_soon_as_one_task_waits() -> None:
    config = PolicyConfig(min_replicas=0)
    d = decide(config, PolicyState(), obs(0, backlog=1, completed=None, oldest=0.5), 0)
    assert (d.replicas, d.direction) == (1, "up")
    assert d.reason.startswith("scale up")


def test_stays_at_zero_when_idle() -> None:
    d = decide(PolicyConfig(min_replicas=0), PolicyState(), obs(0), 0)
    assert (d.replicas, d.direction) == (0, "hold")


@pytest.mark.parametrize("work", [{"backlog": 1}, {"busy": 1}, {"busy": 0, "reserved": 1}])
def test_never_to_zero_with_work(work: dict[str, int]) -> None:
    config = PolicyConfig(min_replicas=0, scale_down_delay_seconds=30)
    d = decide(config, PolicyState(), obs(0), 3)
    for t in range(5, 600, 5):
        d = decide(config, d.state, obs(t, **work), d.replicas)
        assert d.replicas >= 1


def test_to_zero_after_the_delay_when_nothing_is_queued_or_running() -> None:
    config = PolicyConfig(min_replicas=0, scale_down_delay_seconds=60)
    d = decide(config, PolicyState(), obs(0), 2)
    for t in range(5, 60, 5):
        d = decide(config, d.state, obs(t), d.replicas)
        assert d.replicas == 2, t
        assert "before scaling down" in d.reason
    d = decide(config, d.state, obs(60), d.replicas)
    assert (d.replicas, d.direction) == (0, "down")


@pytest.mark.parametrize("knobs", [{}, {"confidence": 0.0}])
def test_to_zero_after_the_delay_once_the_work_ends(knobs: dict[str, float]) -> None:
    # A trickle (a 4 s task every 10 s) leaves an arrival average that decays but never reaches zero;
    # once nothing is queued, reserved or running, the delay alone decides when the last replica goes.
    delay = 60.0
    config = PolicyConfig(min_replicas=0, scale_down_delay_seconds=delay, **knobs)  # type: ignore[arg-type]
    d = decide(config, PolicyState(), obs(0, busy=1), 1)
    t, done = 0.0, 0
    while t < 600:
        t += TICK
        done += int(t) % 10 == 5
        d = decide(config, d.state, obs(t, busy=int(int(t) % 10 < 5), completed=done), d.replicas)
    idle_since = t
    while t < idle_since + delay + TICK:
        t += TICK
        d = decide(config, d.state, obs(t, completed=done), d.replicas)
    assert d.replicas == 0
    assert d.recommended == 0


def test_scales_up_at_once_in_bounded_steps() -> None:
    config = PolicyConfig(max_replicas=50)
    d = decide(config, PolicyState(), obs(0, backlog=500, busy=2, completed=None, oldest=1), 1)
    assert (d.replicas, d.direction) == (5, "up")  # max(4 pods, 100 %) from 1
    assert "bounded step" in d.reason
    d = decide(config, d.state, obs(5, backlog=500, busy=2, completed=None, oldest=6), d.replicas)
    assert d.replicas == 10  # 100 % of 5
    d = decide(config, d.state, obs(10, backlog=500, busy=2, completed=None, oldest=11), d.replicas)
    assert d.replicas == 20


def test_step_size_is_configurable() -> None:
    config = PolicyConfig(max_replicas=50, max_step_up=1, max_step_up_percent=0)
    d = decide(config, PolicyState(), obs(0, backlog=500, completed=None), 3)
    assert d.replicas == 4


def test_clamps_to_max_and_min() -> None:
    config = PolicyConfig(min_replicas=2, max_replicas=10)
    d = decide(config, PolicyState(), obs(0, backlog=10_000, completed=None, oldest=100), 10)
    assert (d.replicas, d.direction) == (10, "hold")
    assert "maxReplicas" in d.reason
    assert decide(config, PolicyState(), obs(0), 14).replicas == 10
    assert decide(config, PolicyState(), obs(0), 0).replicas == 2


def test_littles_law_keeps_up_with_arrivals() -> None:
    # 1 task/s of 4 s tasks keep 4 slots busy: with 90 % target utilization that is 5 slots = 3 replicas.
    config = PolicyConfig(max_replicas=20, confidence=0, target_utilization=0.9)
    d, _, _ = steady(config, rate=1.0, service=4.0, seconds=900, current=3)
    assert d.recommended == 3
    assert service_seconds(config, d.state) == pytest.approx(4.0, rel=0.05)
    assert d.state.arrival_rate == pytest.approx(1.0, rel=0.05)
    # 2 tasks/s of 4 s: 8 busy slots, 8.9 with headroom: 5 replicas.
    d, _, _ = steady(config, rate=2.0, service=4.0, seconds=900, current=5)
    assert d.recommended == 5


def test_the_noise_margin_only_lowers_the_keep_up_term() -> None:
    # 2 tasks/s of 4 s: 8 busy slots = 4 replicas at the measured rate. The default margin (4 deviations
    # of a 60 s average's Poisson noise) asks for less, never more; a queue then asks for the rest.
    exact, _, _ = steady(
        PolicyConfig(max_replicas=20, confidence=0), rate=2.0, service=4.0, seconds=900, current=4
    )
    d, _, _ = steady(PolicyConfig(max_replicas=20), rate=2.0, service=4.0, seconds=900, current=4)
    assert exact.recommended == 4
    assert 2 <= d.recommended <= exact.recommended


def test_a_queue_under_steady_load_adds_the_replicas_the_margin_left_out() -> None:
    config = PolicyConfig(max_replicas=20)
    d, t, done = steady(config, rate=2.0, service=4.0, seconds=900, current=3)  # 6 slots for 8 busy
    queued = obs(t + TICK, backlog=40, busy=6, total=6, completed=int(done) + 8, oldest=15)
    d = decide(config, d.state, queued, d.replicas)
    assert d.direction == "up" and d.replicas >= 4
    assert "projected wait" in d.reason


def test_backlog_is_drained_within_the_wait_target() -> None:
    # Known 10 s service time, no new arrivals, 1 replica (2 slots) busy: of 30 waiting, 2 start before a new
    # replica is ready (10 s); the last of the other 28 must start within 30 s: 28 x 10 / 30 -> 10 slots.
    config = PolicyConfig(max_replicas=20, confidence=0)
    d, t, done = steady(config, rate=0.2, service=10.0, seconds=1800, current=1)
    quiet = dataclasses.replace(d.state, arrived=0.0, last=None)
    d = decide(config, quiet, obs(t + 1, backlog=30, busy=2, total=2, completed=int(done), oldest=0), 1)
    assert d.recommended == 5
    assert "28 queued in 10s: projected wait 140s" in d.reason
    # Those already waiting start in order whatever the replicas: their age changes what they wait in all,
    # not how many replicas can still shorten it.
    d2 = decide(config, quiet, obs(t + 1, backlog=30, busy=2, total=2, completed=int(done), oldest=25), 1)
    assert d2.recommended == 5
    assert "oldest 25s <= target 30s" in d2.reason
    assert (d2.replicas, d2.direction) == (5, "up")


def test_tasks_a_finishing_task_will_start_need_no_new_replica() -> None:
    # One replica, both slots on 10 s tasks, 3 waiting: two start as those finish, before a new replica
    # could be ready; the third waits about 15 s, within the 30 s target, so no replica is added for it.
    config = PolicyConfig()
    d, t, done = steady(config, rate=0.1, service=10.0, seconds=1800, current=1)
    d = decide(
        config, d.state, obs(t + TICK, backlog=3, busy=2, total=2, completed=int(done), oldest=6), d.replicas
    )
    assert (d.replicas, d.direction) == (1, "hold")
    assert "projected wait" in d.reason
    # Ten waiting behind the same two slots would wait far longer: now a replica is worth its start.
    queued = obs(t + 2 * TICK, backlog=10, busy=2, total=2, completed=int(done), oldest=11)
    d = decide(config, d.state, queued, d.replicas)
    assert d.direction == "up" and d.replicas >= 2


def test_a_burst_backlog_is_planned_near_the_target_not_drained_at_once() -> None:
    # 1.4 task/s of 10 s tasks (14 slots) with 25 still queued when a new replica is ready, behind 7 busy
    # replicas: the queue does not drain, so 7 are late; one more drains it within the scale-down delay
    # with a mean wait under half the target, where starting all 25 within 15 s would take 9 replicas.
    plan = Plan(
        waiting=25, arrival=1.4, service=10.0, slots_per_replica=2, target=30.0, planned=15.0, horizon=300.0
    )
    assert plan.late(7)
    assert plan.fewest(7, 20) == 8
    assert projected_wait(25, 10.0, 16) <= 30.0
    assert projected_wait(25, 10.0, 16) > 15.0
    assert plan.fewest(7, 7) == 8  # the bounds and the step are applied after


def test_the_queue_left_when_a_replica_is_ready_counts_arrivals_and_finishing_slots() -> None:
    # 2 busy slots of 10 s tasks free 2 tasks' worth in 10 s; 4 replicas starting in 5 s add 8 slots x 5 s.
    cap = Capacity(free=0, live=2, starting=8, starting_at=5.0, start_delay=10.0)
    assert cap.started_by_delay(10.0) == pytest.approx(2 * 10 / 10 + 8 * 5 / 10)
    assert waiting_when_ready(10, 0.5, cap, 10.0) == pytest.approx(10 + 5 - 6)
    assert waiting_when_ready(3, 0.0, cap, 10.0) == 0.0
    assert mean_wait(0.0, 1.0, 10.0, 20, 300.0) == 0.0
    assert mean_wait(10.0, 2.0, 10.0, 10, 300.0) > mean_wait(10.0, 1.0, 10.0, 10, 300.0)  # a growing queue


def test_unknown_service_time_gives_each_waiting_task_a_slot() -> None:
    d = decide(PolicyConfig(), PolicyState(), obs(0, backlog=3, busy=2, completed=None), 1)
    assert d.recommended == 3
    assert "service time not known" in d.reason


def test_tasks_too_short_for_any_heartbeat_to_see_still_get_slots_when_they_queue() -> None:
    # Found by bench.realrun: 0.4 s tasks at 0.5/s finished between heartbeats, so every heartbeat said 0
    # busy and the service time measured 0; a burst's queue then asked for no replica at all.
    config = PolicyConfig(max_replicas=4)
    d = decide(config, PolicyState(), obs(0, completed=0), 1)
    for t in range(1, 21):
        d = decide(config, d.state, obs(t, completed=t // 2), 1)  # tasks complete, none seen running
    assert service_seconds(config, d.state) == 0
    d = decide(config, d.state, obs(21, backlog=25, completed=10, oldest=2), 1)
    assert (d.direction, d.replicas) == ("up", 4)
    assert "service time too short to measure" in d.reason


def test_no_scale_up_while_nothing_waits() -> None:
    config = PolicyConfig(max_replicas=20, confidence=0, target_utilization=0.9)
    d, _, _ = steady(config, rate=2.0, service=4.0, seconds=300, current=4)  # 8 slots busy of 8
    assert d.replicas == 4 and d.recommended == 5
    assert "no task waiting" in d.reason


def test_a_scale_down_keeps_every_worker_running_tasks() -> None:
    # Two 75 s tasks on two of four workers: the slots alone ask for one worker (two slots), but removing
    # a busy worker would cut its task short, so the scale-down stops at the two running them.
    config = PolicyConfig(min_replicas=0, scale_down_delay_seconds=30)
    d = decide(config, PolicyState(), obs(0, busy=2), 4)
    for t in range(5, 30, 5):
        d = decide(config, d.state, obs(t, busy=2), d.replicas)
    state = d.state
    plain = decide(config, state, obs(30, busy=2), 4)
    assert (plain.replicas, plain.direction) == (1, "down")
    kept = decide(config, state, dataclasses.replace(obs(30, busy=2), busy_workers=2), 4)
    assert (kept.replicas, kept.direction) == (2, "down")
    assert "2 workers running tasks stay" in kept.reason
    held = decide(config, state, dataclasses.replace(obs(30, busy=4), busy_workers=4), 4)
    assert (held.replicas, held.direction) == (4, "hold")
    assert "none idle to remove" in held.reason


def _time(d: Decision) -> float:
    assert d.state.last is not None
    return d.state.last.time


def test_down_only_after_the_delay_and_to_the_windows_highest() -> None:
    delay = 100.0
    config = PolicyConfig(
        max_replicas=20, scale_down_delay_seconds=delay, confidence=0, target_utilization=0.9
    )
    d, t, done = steady(config, rate=1.0, service=10.0, seconds=600, current=6)  # 11.1 slots: 6 replicas
    assert (d.replicas, d.recommended) == (6, 6)
    log: list[Decision] = []
    changed = t
    d, t, done = steady(
        config, rate=0.3, service=10.0, seconds=600, current=6, state=d.state, start=t, done=done, log=log
    )
    downs = [x for x in log if x.direction == "down"]
    assert downs and d.replicas == 2  # 3.3 slots
    current = 6
    for x in log:
        if x.direction == "down":
            assert _time(x) - changed >= delay
            window = [y.recommended for y in log if _time(x) - delay <= _time(y) <= _time(x)]
            assert max(window) < current
            assert x.replicas == max(window)
            assert "scale down" in x.reason
        current = x.replicas


def test_counter_reset_is_not_a_negative_rate() -> None:
    config = PolicyConfig(max_replicas=20, confidence=0, target_utilization=0.9)
    d, t, _ = steady(config, rate=1.0, service=4.0, seconds=300, current=3)
    before = d.state.arrival_rate
    d = decide(config, d.state, obs(t + TICK, busy=4, completed=3), d.replicas)
    assert "counter reset" in d.reason
    assert d.state.arrival_rate == before
    assert d.replicas == 3
    d = decide(config, d.state, obs(t + 2 * TICK, busy=4, completed=8), d.replicas)
    assert d.state.arrival_rate is not None and d.state.arrival_rate > 0


def test_time_going_backwards_changes_no_rate() -> None:
    config = PolicyConfig()
    d, t, done = steady(config, rate=1.0, service=4.0, seconds=120, current=3)
    again = decide(config, d.state, obs(t - 50, busy=4, completed=int(done) + 100), d.replicas)
    assert again.state.arrived == d.state.arrived
    assert again.replicas == d.replicas


def test_burst_start_is_noticed_within_two_ticks() -> None:
    config = PolicyConfig(max_replicas=20)
    d, t, done = steady(config, rate=0.1, service=10.0, seconds=600, current=1)
    assert d.replicas == 1
    backlog, finished = 0, int(done)
    for _ in range(2):  # 2 tasks/s arrive; one slot pair keeps finishing 0.2/s
        t += TICK
        finished += 1
        backlog += 9
        d = decide(
            config,
            d.state,
            obs(t, backlog=backlog, busy=2, completed=finished, oldest=backlog / 2),
            d.replicas,
        )
    assert d.replicas >= 9  # 2/s x 10 s = 20 slots wanted; up to 10 allowed by the step from 5
    assert "arrival" in d.reason
