"""The scaling loop the operator, local mode and bench/ share (queueworker.scaling.loop), against a fake
fleet: up at once, down keeping the workers that hold tasks, hold without an observation, each start time
learnt once, state forgotten with its QueueWorker, and scale called only when the replicas change."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import pytest
from queueworker.scaling import loop as loop_module
from queueworker.scaling.loop import ScalingLoop
from queueworker.scaling.model import Decision, Observation, PolicyConfig, PolicyState
from queueworker.scaling.policy import decide

CONFIG = PolicyConfig(min_replicas=1, max_replicas=10, scale_down_delay_seconds=30.0, slots_per_replica=2)


class FakeFleet:
    def __init__(self, replicas: int, busy: Mapping[str, int] | None = None) -> None:
        self.current = replicas
        self.busy_now = dict(busy or {})
        self.starts: list[tuple[str, float]] = []
        self.scaled: list[tuple[int, dict[str, int]]] = []
        self.busy_reads = 0

    def replicas(self) -> int:
        return self.current

    def start_times(self, seen: Callable[[str], bool]) -> Iterable[tuple[str, float]]:
        return list(self.starts)

    def busy(self) -> Mapping[str, int]:
        self.busy_reads += 1
        return self.busy_now

    def scale(self, replicas: int, keep: Mapping[str, int]) -> None:
        assert replicas != self.current, "scale called without a change of replicas"
        self.scaled.append((replicas, dict(keep)))
        self.current = replicas


def obs(t: float, backlog: int = 0, busy: int = 0, total: int = 0, completed: int = 0) -> Observation:
    return Observation(
        time=t,
        backlog=backlog,
        reserved=busy,
        busy_slots=busy,
        total_slots=total,
        workers=total // 2,
        oldest_wait=5.0 if backlog else None,
        completed_total=completed,
    )


def test_a_backlog_scales_up_at_once() -> None:
    loop, fleet = ScalingLoop(), FakeFleet(1)
    decision = loop.step("a", CONFIG, obs(0.0, backlog=20, busy=2, total=2), fleet)
    assert decision.direction == "up" and decision.replicas > 1
    assert fleet.scaled == [(decision.replicas, {})]
    assert fleet.busy_reads == 0  # busy workers are read only before a scale-down


def drain(loop: ScalingLoop, fleet: FakeFleet, until: float, busy_slots: int = 0) -> list[Decision]:
    decisions, t = [], 0.0
    while t <= until:
        decisions.append(loop.step("a", CONFIG, obs(t, busy=busy_slots, total=2 * fleet.current), fleet))
        t += 5.0
    return decisions


def test_a_scale_down_keeps_the_workers_holding_tasks() -> None:
    loop = ScalingLoop()
    fleet = FakeFleet(6, busy={"w0": 2, "w1": 1, "w2": 0, "w3": 0})
    decisions = drain(loop, fleet, until=60.0, busy_slots=1)  # the policy alone would keep 1
    down = [d for d in decisions if d.direction == "down"]
    assert len(down) == 1 and down[0].replicas == 2, "the floor: two workers hold tasks"
    assert "2 workers running tasks stay" in down[0].reason
    assert fleet.scaled == [(2, {"w0": 2, "w1": 1})]  # idle ones are not in `keep`


def test_without_busy_workers_a_scale_down_goes_to_the_recommendation() -> None:
    loop, fleet = ScalingLoop(), FakeFleet(6)
    drain(loop, fleet, until=60.0)
    assert fleet.scaled == [(1, {})]  # min_replicas
    assert fleet.busy_reads == 1


def test_every_worker_busy_holds() -> None:
    loop, fleet = ScalingLoop(), FakeFleet(3, busy={"w0": 1, "w1": 1, "w2": 1})
    decisions = drain(loop, fleet, until=60.0, busy_slots=3)
    assert fleet.scaled == []
    assert decisions[-1].direction == "hold" and "none idle to remove" in decisions[-1].reason


def test_no_observation_holds() -> None:
    loop, fleet = ScalingLoop(), FakeFleet(4)
    fleet.starts = [("p", 12.0)]
    decision = loop.step("a", CONFIG, None, fleet)
    assert decision.direction == "hold" and decision.replicas == 4
    assert fleet.scaled == [] and fleet.busy_reads == 0
    assert loop.learn_starts("a", FakeFleet(4)) is None  # nothing learnt without an observation


def test_start_times_are_learnt_once_per_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[float | None] = []

    def recording(config: PolicyConfig, state: PolicyState, o: Observation | None, current: int) -> Decision:
        seen.append(None if o is None else o.start_seconds)
        return decide(config, state, o, current)

    monkeypatch.setattr(loop_module, "decide", recording)
    loop, fleet = ScalingLoop(), FakeFleet(1)
    loop.step("a", CONFIG, obs(0.0), fleet)
    fleet.starts = [("p1", 10.0)]
    loop.step("a", CONFIG, obs(5.0), fleet)
    fleet.starts = [("p1", 10.0), ("p1", 50.0), ("p2", 20.0)]  # p1 again, measured otherwise: ignored
    loop.step("a", CONFIG, obs(10.0), fleet)
    loop.step("a", CONFIG, obs(15.0), fleet)
    assert seen == [None, 10.0, 15.0, 15.0]
    loop.step("b", CONFIG, obs(15.0), FakeFleet(1))
    assert seen[-1] is None  # another QueueWorker's starts are its own
    loop.step("a", CONFIG, obs(20.0), fleet, learn=False)
    assert seen[-1] is None  # not learning: the policy's default


def test_state_is_forgotten_for_removed_keys() -> None:
    loop = ScalingLoop()
    fleet_a, fleet_b = FakeFleet(1), FakeFleet(1)
    fleet_a.starts = [("p", 8.0)]
    loop.step("a", CONFIG, obs(0.0, backlog=3), fleet_a)
    loop.step("b", CONFIG, obs(0.0, backlog=3), fleet_b)
    assert loop.state("a").last is not None and loop.state("b").last is not None
    loop.forget({"b"})
    assert loop.state("a") == PolicyState() and loop.state("b").last is not None
    assert loop.learn_starts("a", FakeFleet(1)) is None


def test_scale_is_called_only_when_the_replicas_change() -> None:
    loop, fleet = ScalingLoop(), FakeFleet(2)
    for t in range(0, 50, 5):
        decision = loop.step("a", CONFIG, obs(float(t), busy=4, total=4), fleet)
        assert decision.replicas == 2 and decision.direction == "hold"
    assert fleet.scaled == []
    up = loop.step("a", CONFIG, obs(50.0, backlog=10, busy=4, total=4), fleet)
    assert up.direction == "up" and fleet.scaled == [(up.replicas, {})]
    for t in range(55, 100, 5):  # the new workers run the backlog: no change, no call
        loop.step("a", CONFIG, obs(float(t), busy=2 * fleet.current, total=2 * fleet.current), fleet)
    assert len(fleet.scaled) == 1
