"""The start time the policy learns: measured per worker (pod creation to Ready, process spawn to ready),
estimated as a median, kept by the policy between measurements and used in place of its default."""

from __future__ import annotations

import dataclasses

import pytest
from queueworker.scaling.policy import PolicyConfig, decide
from queueworker.scaling.startup import StartTimes, pod_start_seconds

from tests.fast.unit.test_policy import obs, steady


def pod(created: str | None, ready_at: str | None, ready: str = "True", restarts: int = 0) -> dict:
    conditions = [{"type": "PodScheduled", "status": "True", "lastTransitionTime": created}]
    if ready_at is not None:
        conditions.append({"type": "Ready", "status": ready, "lastTransitionTime": ready_at})
    return {
        "metadata": {"name": "w-1", "uid": "u-1", "creationTimestamp": created},
        "status": {
            "conditions": conditions,
            "containerStatuses": [{"name": "worker", "restartCount": restarts}],
        },
    }


def test_a_pod_start_is_creation_to_ready() -> None:
    assert pod_start_seconds(pod("2026-12-06T10:00:00Z", "2026-12-06T10:00:17Z")) == 17.0
    assert pod_start_seconds(pod("2026-12-06T10:00:00Z", "2026-12-06T10:01:02.5+00:00")) == 62.5


@pytest.mark.parametrize(
    "unmeasured",
    [
        pod("2026-12-06T10:00:00Z", None),  # no Ready condition yet
        pod("2026-12-06T10:00:00Z", "2026-12-06T10:00:17Z", ready="False"),  # not ready
        pod("2026-12-06T10:00:00Z", "2026-12-06T10:09:00Z", restarts=1),  # Ready may not be its first
        pod(None, "2026-12-06T10:00:17Z"),
        pod("yesterday", "2026-12-06T10:00:17Z"),
        {},
    ],
)
def test_pods_without_a_first_ready_time_are_not_measured(unmeasured: dict) -> None:
    assert pod_start_seconds(unmeasured) is None


def test_the_estimate_is_the_median_of_the_last_starts_each_counted_once() -> None:
    starts = StartTimes(keep=3)
    assert starts.estimate() is None
    starts.record("a", 10.0)
    starts.record("a", 99.0)  # the same worker again: ignored
    starts.record("b", -1.0)  # a clock step: ignored
    assert starts.estimate() == 10.0 and starts.seen("a") and not starts.seen("b")
    for key, seconds in (("c", 40.0), ("d", 12.0), ("e", 38.0)):
        starts.record(key, seconds)
    assert starts.estimate() == 38.0  # the median of 40, 12, 38: the first start fell out


def test_the_policy_plans_with_the_measured_start_time_and_keeps_it() -> None:
    # As in test_backlog_is_drained_within_the_wait_target: 10 s tasks, 30 waiting behind 2 busy slots, no
    # arrivals. With the default 10 s start, 28 are still queued when a new replica is ready (5 replicas);
    # measured 30 s starts let the two busy slots start 6 of them first: 24 left, 4 replicas drain them.
    config = PolicyConfig(max_replicas=20, confidence=0)
    d, t, done = steady(config, rate=0.2, service=10.0, seconds=1800, current=1)
    quiet = dataclasses.replace(d.state, arrived=0.0, last=None)
    queued = obs(t + 1, backlog=30, busy=2, total=2, completed=int(done), oldest=0)
    assert decide(config, quiet, queued, 1).recommended == 5
    measured = decide(config, quiet, dataclasses.replace(queued, start_seconds=30.0), 1)
    assert measured.recommended == 4 and "24 queued in 30s" in measured.reason
    # Kept when later observations carry no measurement, and through a broker outage.
    later = decide(config, measured.state, obs(t + 2, backlog=30, busy=2, total=2, completed=int(done)), 1)
    assert "queued in 30s" in later.reason
    held = decide(config, later.state, None, 1)
    assert held.state.start_seconds == 30.0
    # A new measurement replaces it.
    faster = decide(config, held.state, dataclasses.replace(queued, time=t + 3, start_seconds=4.0), 1)
    assert faster.state.start_seconds == 4.0 and "queued in 4s" in faster.reason
