"""The builtin autoscaler on the cluster (task-a: minReplicas 0, maxReplicas 4, targetWaitSeconds 10,
scaleDownDelaySeconds 30, 2 slots a pod). Measured and printed, never asserted as timings: from a burst's
first publish to the first new worker pod Ready, and from the drain back to minReplicas. Asserted: the
scale-down removes idle pods (pod-deletion-cost), busy pods finish their tasks, and nothing is lost or
run twice."""

from __future__ import annotations

import datetime
import time
from typing import Any

import pytest

from tests.e2e.cluster import describe_pods, wait_for
from tests.e2e.conftest import Release, report
from tests.e2e.flows import completed, depth, heartbeats, publish, unacked, worker_deployment, worker_pods

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

QUEUE = "for_task_A"
COST = "controller.kubernetes.io/pod-deletion-cost"


def ready_at(pod: Any) -> float | None:
    for condition in pod.status.conditions or []:
        if condition.type == "Ready" and condition.status == "True":
            stamp: datetime.datetime = condition.last_transition_time
            return stamp.timestamp()
    return None


def live(pods: list[Any]) -> list[Any]:
    return [p for p in pods if p.metadata.deletion_timestamp is None]


def test_burst_scales_up_then_idle_pods_go_first(release: Release) -> None:
    cluster, ns = release.cluster, release.namespace
    wait_for(
        "task-a at zero workers",
        lambda: not live(worker_pods(release, "task-a")),
        timeout=300,
        diagnose=lambda: describe_pods(cluster, ns),
    )
    before = completed(release, QUEUE)
    first = publish(release, "tasks.taskA", 40, [2.0])
    peak: list[Any] = []

    def burst_done() -> bool:
        pods = live(worker_pods(release, "task-a"))
        if len(pods) > len(peak):
            peak[:] = pods
        return completed(release, QUEUE) >= before + 40 and depth(release, QUEUE) == 0

    wait_for(
        "the burst to complete",
        burst_done,
        timeout=400,
        interval=1.0,
        diagnose=lambda: describe_pods(cluster, ns),
    )
    drained = time.time()
    readies = sorted(t for p in worker_pods(release, "task-a") if (t := ready_at(p)) is not None)
    assert len(peak) >= 2, f"task-a never scaled past {len(peak)} pods for 80 task-seconds"
    report(
        f"\nautoscaling: first worker Ready {readies[0] - first:.1f} s after the burst's first publish; "
        f"peak {len(peak)} pods; burst of 40 x 2 s drained {drained - first:.1f} s after it"
    )

    # Two long tasks keep one or two pods busy through the scale-down; the idle ones must go first.
    publish(release, "tasks.taskA", 2, [75.0])

    def running() -> dict[str, int] | None:
        """Pod -> running tasks, once both long tasks show in the heartbeats (written every 5 s each)."""
        if unacked(release) != 2 or depth(release, QUEUE) != 0:
            return None
        beats = heartbeats(release, QUEUE).items()
        found = {host.split("@", 1)[1]: hb["busy"] for host, hb in beats if hb["busy"]}
        return found if sum(found.values()) == 2 else None

    busy: dict[str, int] = wait_for("the two long tasks running", running, timeout=120)
    count = len(peak)  # what it scales down from (it may have begun while the heartbeats came in)
    wait_for(
        f"task-a to scale down from {count}",
        lambda: worker_deployment(release, "task-a").spec.replicas < count,
        timeout=240,
    )
    scaled_down = time.time()
    pods = {p.metadata.name: p for p in worker_pods(release, "task-a")}
    costs = {name: (p.metadata.annotations or {}).get(COST) for name, p in pods.items()}
    for name, slots in busy.items():
        assert name in pods and pods[name].metadata.deletion_timestamp is None, (
            f"busy pod {name} ({slots} running) was chosen for deletion: costs {costs}"
        )
        assert costs[name] == str(100 * slots), costs
    going = [n for n, p in pods.items() if p.metadata.deletion_timestamp is not None]
    assert all(costs[n] == "-100" for n in going), costs
    report(
        f"autoscaling: scale-down {scaled_down - drained:.1f} s after the drain (delay 30 s) kept the busy "
        f"pods {sorted(busy)}; deletion costs {costs}"
    )

    wait_for(
        "the long tasks to finish",
        lambda: completed(release, QUEUE) >= before + 42 and unacked(release) == 0,
        timeout=240,
    )
    finished = time.time()
    wait_for(
        "task-a back at minReplicas 0",
        lambda: worker_deployment(release, "task-a").spec.replicas == 0,
        timeout=240,
    )
    report(f"autoscaling: back to minReplicas 0 {time.time() - finished:.1f} s after the last task finished")
    assert completed(release, QUEUE) == before + 42, "a task was lost or ran twice"
