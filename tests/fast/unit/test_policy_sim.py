"""The autoscaling benchmark's machinery: the simulation, the KEDA/HPA emulations, the oracle, the driver."""

from __future__ import annotations

import math
from pathlib import Path
from typing import cast

import numpy as np
import pytest
from queueworker.scaling.policy import PolicyConfig

import bench.__main__ as driver
from bench.autoscale.policies import (
    HPA_DOWN_WINDOW,
    ORACLE_UTILIZATION,
    Builtin,
    Clairvoyant,
    HpaAlgorithm,
    Keda,
)
from bench.autoscale.sim import Simulation, View
from bench.autoscale.traces import TRACES, Trace, arrivals, service_times


class Fixed:
    """A controller that asks for a schedule of replicas: [(from time, replicas), ...]."""

    name = "fixed"
    interval = 5.0
    prefers_idle = False

    def __init__(self, schedule: list[tuple[float, int]]) -> None:
        self.schedule = schedule

    def tick(self, now: float, view: View, current: int) -> int:
        return [r for t, r in self.schedule if t <= now][-1]


class _Lists:
    def __init__(self, backlog: int, base: int | None) -> None:
        self.backlog = backlog
        self.base_list_length = backlog if base is None else base


def fake_view(backlog: int, base: int | None = None) -> View:
    """What KEDA's and the HPA's emulations read: the queue's length, and its base list's."""
    return cast(View, _Lists(backlog, base))


def _sim(controller: object, n: int = 300, duration: float = 600.0, replicas: int = 2) -> Simulation:
    rng = np.random.default_rng(3)
    arrival = np.sort(rng.uniform(0, duration - 100, n))
    return Simulation(
        arrival,
        service_times(n, rng),
        controller,
        duration=duration,  # type: ignore[arg-type]
        concurrency=2,
        initial_replicas=replicas,
    )


def test_every_task_runs_once_in_arrival_order() -> None:
    sim = _sim(Fixed([(0, 2)]))
    result = sim.run()
    assert np.all(result.waits >= 0)
    assert sim.completed == len(sim.arrival)
    assert np.all(np.diff(sim.start) >= 0)  # one FIFO list: tasks start in the order they arrived


def test_cost_counts_pod_seconds_from_creation() -> None:
    result = _sim(Fixed([(0, 2), (100, 5)])).run()
    # 2 pods for 600 s, 3 more created at the first tick at or after 100 s (ticks every 5 s from 0).
    assert result.cost == pytest.approx(2 * 600 + 3 * 500)
    assert (result.ups, result.downs) == (1, 0)


def test_removed_pods_finish_their_tasks() -> None:
    sim = _sim(Fixed([(0, 4), (200, 1)]), n=400)
    result = sim.run()
    assert sim.completed == len(sim.arrival)
    assert result.downs == 1
    assert 4 * 200 + 1 * 400 <= result.cost < 4 * 600


def test_more_replicas_wait_less() -> None:
    few, many = _sim(Fixed([(0, 1)])).run(), _sim(Fixed([(0, 6)])).run()
    assert np.percentile(many.waits, 95) < np.percentile(few.waits, 95)
    assert many.cost > few.cost


def test_hpa_tolerance_and_scale_up_limit() -> None:
    hpa = HpaAlgorithm(target=5, min_replicas=1, max_replicas=50)
    assert hpa.desired(0, metric=5 * 4 * 1.05, current=4) == 4  # within the 10 % tolerance
    assert hpa.desired(15, metric=500, current=2) == 6  # max(+4 pods, +100 %) per period
    assert hpa.desired(30, metric=500, current=10) == 20


def test_hpa_scale_down_waits_for_the_stabilization_window() -> None:
    hpa = HpaAlgorithm(target=5, min_replicas=1, max_replicas=50)
    assert hpa.desired(0, metric=50, current=10) == 10
    t = 15.0
    while t < HPA_DOWN_WINDOW:
        assert hpa.desired(t, metric=0, current=10) == 10
        t += 15
    assert hpa.desired(HPA_DOWN_WINDOW + 1, metric=0, current=10) == 1


def test_keda_sees_only_the_base_list() -> None:
    keda = Keda(min_replicas=1, max_replicas=10)
    assert keda.tick(0, fake_view(backlog=100, base=0), 1) == 1  # priority lists are invisible to it
    assert Keda(1, 10).tick(0, fake_view(backlog=40), 1) == 5  # ceil(40 / 5), capped by +4 pods


def test_keda_activates_from_zero_and_cools_down_to_zero() -> None:
    keda = Keda(min_replicas=0, max_replicas=10)
    assert keda.tick(0, fake_view(1), 0) == 1
    current, t = 1, 15.0
    while t < 300:
        current = keda.tick(t, fake_view(0), current)
        assert current >= 1
        t += 15
    while t <= 345 and current:
        current = keda.tick(t, fake_view(0), current)
        t += 15
    assert current == 0


def test_oracle_runs_what_the_rate_needs_and_holds_it() -> None:
    config = PolicyConfig(max_replicas=20)
    trace = TRACES["burst"]
    oracle = Clairvoyant(trace.rate, 10.0, config, trace.duration, start_delay=10.0)
    view = fake_view(0)
    assert oracle.tick(100, view, 1) == 1
    needed = math.ceil(1.4 * 10 / ORACLE_UTILIZATION / 2)
    assert oracle.tick(290, view, 1) == needed  # one pod start ahead of 300 s
    assert oracle.tick(480 + 290, view, needed) == needed  # 300 s after the burst's end still held
    assert oracle.tick(480 + 320, view, needed) == 1


def test_builtin_scales_up_within_a_tick_of_a_spike() -> None:
    spike = Trace("t", "spike", 600.0, lambda t: 5.0 if 300 <= t < 320 else 0.05, 5.0)
    rng = np.random.default_rng(5)
    arrival = arrivals(spike, rng)
    controller = Builtin(PolicyConfig())
    Simulation(
        arrival,
        service_times(len(arrival), rng),
        controller,
        duration=600.0,
        concurrency=2,
        initial_replicas=1,
    ).run()
    times = [d.state.last.time for d in controller.decisions if d.direction == "up" and d.state.last]
    assert next(t for t in times if t >= 300) <= 310


def test_builtin_keeps_the_pods_holding_tasks_at_a_scale_down() -> None:
    """The shared loop's busy step: three long tasks on three pods keep three replicas (the policy alone
    would keep one), and the pods removed are the idle ones, marked as the operator's deletion costs do."""
    arrival = np.array([0.0, 0.1, 0.2] + [0.3 + 0.01 * i for i in range(20)])
    service = np.array([400.0] * 3 + [2.0] * 20)
    config = PolicyConfig(max_replicas=10, scale_down_delay_seconds=30.0, slots_per_replica=1)
    controller = Builtin(config)
    sim = Simulation(arrival, service, controller, duration=300.0, concurrency=1, initial_replicas=1)
    sim.run()
    down = next(d for d in controller.decisions if d.direction == "down")
    assert down.replicas == 3 and "3 workers running tasks stay" in down.reason
    long_pods = {0, 1, 2}  # the pods the three long tasks started on (the first pods ready)
    assert all(sim.pods[i].ended is None or sim.pods[i].ended >= 400.0 for i in long_pods)
    removed_at_down = [p for p in sim.pods if p.ended == down.state.last_scale_time]
    assert removed_at_down and not {p.id for p in removed_at_down} & long_pods  # idle ones went, at once


def _write(pkg: Path, name: str, body: str) -> None:
    (pkg / f"{name}.py").write_text(body)


def test_driver_runs_what_exists_and_ends_with_the_result_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pkg = tmp_path / "fakebench"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    _write(pkg, "ok", "def main(argv=None):\n    assert argv == []\n    return {'ratio': 2.0}\n")
    _write(pkg, "boom", "def main():\n    raise RuntimeError('broken bench')\n")
    _write(pkg, "auto", "def main():\n    return {'p95_wait_ratio': 0.456, 'cost_ratio': 1.04}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(
        driver, "MODULES", ("fakebench.missing", "fakebench.ok", "fakebench.boom", "fakebench.auto")
    )
    monkeypatch.setattr(driver, "AUTOSCALE", "fakebench.auto")
    assert driver.main() == 1  # one module failed
    out = capsys.readouterr().out
    assert "fakebench.missing: not present, skipped" in out
    assert '"ratio": 2.0' in out
    assert "fakebench.boom: FAILED" in out
    assert out.strip().splitlines()[-1] == "RESULT p95_wait_ratio=0.46 cost_ratio=1.04"


def test_driver_prints_the_tuned_result_before_the_result_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pkg = tmp_path / "fakebench2"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    _write(
        pkg,
        "auto",
        "def main():\n    return {'p95_wait_ratio': 0.41, 'cost_ratio': 1.07,"
        " 'tuned_p95_wait_ratio': 0.384, 'tuned_cost_ratio': 1.146}\n",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(driver, "MODULES", ("fakebench2.auto",))
    monkeypatch.setattr(driver, "AUTOSCALE", "fakebench2.auto")
    assert driver.main() == 0
    last = capsys.readouterr().out.strip().splitlines()[-2:]
    assert last == [
        "RESULT_TUNED p95_wait_ratio=0.38 cost_ratio=1.15",
        "RESULT p95_wait_ratio=0.41 cost_ratio=1.07",
    ]


def test_driver_without_the_autoscale_result_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(driver, "MODULES", ("fakebench_absent.x",))
    assert driver.main() == 1


def test_arrivals_follow_the_rate() -> None:
    rng = np.random.default_rng(1)
    times = arrivals(TRACES["steady"], rng)
    assert len(times) == pytest.approx(0.8 * 3600, rel=0.05)
    assert np.all(np.diff(times) >= 0)
    assert service_times(20_000, rng).mean() == pytest.approx(10.0, rel=0.05)
