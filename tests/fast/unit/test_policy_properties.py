"""Properties of the builtin policy over random observation sequences (hypothesis)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st
from queueworker.scaling.policy import Decision, Observation, PolicyConfig, PolicyState, decide


@dataclass(frozen=True)
class Step:
    dt: float
    backlog: int
    busy: int
    reserved: int
    finished: int  # tasks finished since the last step
    reset: bool  # the completion counter restarts from zero
    unreachable: bool


steps = st.builds(
    Step,
    dt=st.floats(min_value=0.5, max_value=30.0),
    backlog=st.one_of(st.just(0), st.integers(0, 400)),
    busy=st.one_of(st.just(0), st.integers(0, 60)),
    reserved=st.one_of(st.just(0), st.integers(0, 60)),
    finished=st.integers(0, 50),
    reset=st.integers(0, 19).map(lambda n: n == 0),
    unreachable=st.integers(0, 9).map(lambda n: n == 0),
)

configs = st.builds(
    lambda lo, span, delay, slots, step: PolicyConfig(
        min_replicas=lo,
        max_replicas=max(lo, 1) + span,
        scale_down_delay_seconds=delay,
        slots_per_replica=slots,
        max_step_up=step,
    ),
    lo=st.integers(0, 3),
    span=st.integers(0, 20),
    delay=st.sampled_from([0.0, 15.0, 60.0, 300.0]),
    slots=st.integers(1, 8),
    step=st.integers(1, 6),
)


def run(config: PolicyConfig, start: int, seq: list[Step]) -> list[tuple[Observation | None, int, Decision]]:
    """Feed the sequence, following the policy's replicas: (observation, replicas before, decision)."""
    out = []
    state, current, t, counter = PolicyState(), start, 0.0, 0
    for s in seq:
        t += s.dt
        counter = 0 if s.reset else counter + s.finished
        o = (
            None
            if s.unreachable
            else Observation(
                time=t,
                backlog=s.backlog,
                reserved=s.reserved,
                busy_slots=s.busy,
                total_slots=s.busy + 2,
                workers=1,
                oldest_wait=float(s.backlog) if s.backlog else None,
                completed_total=counter,
            )
        )
        d = decide(config, state, o, current)
        out.append((o, current, d))
        state, current = d.state, d.replicas
    return out


def start_within(config: PolicyConfig) -> st.SearchStrategy[int]:
    return st.integers(config.min_replicas, config.max_replicas)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), config=configs, seq=st.lists(steps, min_size=1, max_size=80))
def test_always_within_bounds(data: st.DataObject, config: PolicyConfig, seq: list[Step]) -> None:
    start = data.draw(st.integers(0, config.max_replicas + 5))
    for _, _, d in run(config, start, seq):
        assert config.min_replicas <= d.replicas <= config.max_replicas
        assert d.direction in ("up", "down", "hold")
        assert d.reason


@settings(max_examples=60, deadline=None)
@given(data=st.data(), config=configs, seq=st.lists(steps, min_size=1, max_size=80))
def test_never_to_zero_with_work_and_from_zero_at_once(
    data: st.DataObject, config: PolicyConfig, seq: list[Step]
) -> None:
    for o, before, d in run(config, data.draw(start_within(config)), seq):
        if o is None:
            assert d.replicas == before  # unreachable: hold
            continue
        if o.backlog or o.reserved or o.busy_slots:
            assert d.replicas >= 1
        if before == 0 and o.backlog > 0:
            assert d.replicas >= 1 and d.direction == "up"


@settings(max_examples=60, deadline=None)
@given(data=st.data(), config=configs, seq=st.lists(steps, min_size=1, max_size=120))
def test_never_down_before_the_delay(data: st.DataObject, config: PolicyConfig, seq: list[Step]) -> None:
    history = run(config, data.draw(start_within(config)), seq)
    delay = config.scale_down_delay_seconds
    for i, (o, before, d) in enumerate(history):
        if d.direction != "down":
            continue
        assert o is not None
        # Data without a gap for the whole delay, and every recommendation in it below the replicas.
        window, covered = [], False
        for p, _, e in reversed(history[: i + 1]):
            assert p is not None, "scaled down with an outage inside the delay window"
            if p.time >= o.time - delay:
                window.append(min(max(_wanted(e.recommended, p), config.min_replicas), config.max_replicas))
            if p.time <= o.time - delay:
                covered = True
                break
        assert covered, f"scaled down {o.time}s after the first observation, delay {delay}s"
        assert max(window) < before
        assert d.replicas == max(window)


def _wanted(recommended: int, o: Observation) -> int:
    return max(recommended, 1) if (o.backlog or o.reserved or o.busy_slots) else recommended


@settings(max_examples=60, deadline=None)
@given(data=st.data(), config=configs, seq=st.lists(steps, min_size=1, max_size=80))
def test_up_in_bounded_steps(data: st.DataObject, config: PolicyConfig, seq: list[Step]) -> None:
    for _, before, d in run(config, data.draw(start_within(config)), seq):
        if d.direction == "up":
            step = max(config.max_step_up, math.ceil(before * config.max_step_up_percent / 100))
            assert d.replicas - before <= step
