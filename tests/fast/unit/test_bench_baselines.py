"""The tuned-KEDA and queue-latency baselines of bench/autoscale, rule by rule, and the builtin policy's
start-time learning in the simulation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np
import pytest
from queueworker.scaling.policy import PolicyConfig

from bench.autoscale.baselines import (
    LATENCY_DOWN_WINDOW,
    TUNED_DOWN_WINDOW,
    KedaTuned,
    LatencyScaler,
    tuned_list_length,
)
from bench.autoscale.policies import Builtin
from bench.autoscale.sim import Simulation, View
from bench.autoscale.traces import service_times


@dataclass
class Queue:
    """What the baselines read: the base list's length and the oldest task's wait."""

    base_list_length: int = 0
    oldest_wait: float | None = None


def view(length: int = 0, oldest: float | None = None) -> View:
    return cast(View, Queue(length, oldest))


def test_the_tuned_list_length_is_what_one_pod_finishes_within_the_target() -> None:
    assert tuned_list_length(2, 30.0, 10.0) == 6
    assert tuned_list_length(2, 30.0, 1.0) == 60
    assert tuned_list_length(2, 30.0, 120.0) == 1  # never below one task


def test_keda_tuned_syncs_every_15s_scales_up_by_policy_and_down_after_60s() -> None:
    keda = KedaTuned(min_replicas=1, max_replicas=10, list_length=6)
    assert keda.tick(0, view(60), 2) == 6  # ceil(60 / 6) = 10, limited to max(+4 pods, +100 %)
    assert keda.tick(5, view(60), 6) == 6  # polled every 5 s, but the HPA syncs every 15 s
    assert keda.tick(15, view(60), 6) == 10
    t, current = 30.0, 10
    while t - 15 < TUNED_DOWN_WINDOW:  # the last high recommendation was at 15 s
        current = keda.tick(t, view(0), current)
        assert current == 10
        t += 15
    assert keda.tick(t, view(0), current) == 1


def test_keda_tuned_activates_from_zero_at_its_polling_interval() -> None:
    keda = KedaTuned(min_replicas=0, max_replicas=10, list_length=6)
    assert keda.tick(0, view(0), 0) == 0
    assert keda.tick(5, view(1), 0) == 1


def test_latency_scaler_is_proportional_to_the_oldest_wait() -> None:
    scaler = LatencyScaler(min_replicas=1, max_replicas=10, target_wait=30.0)
    assert scaler.tick(0, view(10, oldest=15.0), 4) == 4  # ceil(4 x 15 / 30) = 2: held for a window first
    assert scaler.tick(10, view(30, oldest=60.0), 4) == 8  # up at once
    assert scaler.tick(20, view(80, oldest=120.0), 8) == 10  # within maxReplicas
    t, current = 30.0, 10
    while t - 20 < LATENCY_DOWN_WINDOW:
        current = scaler.tick(t, view(0), current)
        assert current == 10
        t += 10
    assert scaler.tick(t, view(0), current) == 1


@pytest.mark.parametrize("start", [4.0, 25.0])
def test_the_simulated_builtin_learns_the_pods_start_time(start: float) -> None:
    rng = np.random.default_rng(2)
    arrival = np.sort(rng.uniform(0, 400, 300))  # enough at once to need more pods
    learner = Builtin(PolicyConfig())
    fixed = Builtin(PolicyConfig(), learn=False)
    for controller in (learner, fixed):
        Simulation(
            arrival,
            service_times(len(arrival), np.random.default_rng(3)),
            controller,
            duration=600.0,
            concurrency=2,
            initial_replicas=1,
            start_delay=start,
        ).run()
    assert learner.state.start_seconds == pytest.approx(start)
    assert fixed.state.start_seconds is None  # plans with start_delay_seconds
