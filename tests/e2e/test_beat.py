"""One beat fires each due time once, even with two beats running: a second beat Deployment (a copy of
the operator's) beside the first for the whole window, the first's pod and then the second's deleted, so
the lock changes hands. The schedule's queue has no workers (mode off, 0 replicas), so every message a
beat sent stays there with its publish stamp: no two may be closer than a fraction of the interval, and
the logs show the ticks sent by more than one beat pod in turn. The queued messages also make this
QueueWorker orphaned, which test_monitoring then finds firing as an alert."""

from __future__ import annotations

import base64
import copy
import itertools
import json
import time

import pytest

from tests.e2e.cluster import describe_pods, wait_for
from tests.e2e.conftest import Release, report
from tests.e2e.flows import apply_queueworker, redis

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

QUEUE = "beat_check"
EVERY = 5.0
SENT = "Sending due task qw/"  # celery beat's line for each entry it sends
TICKER = {
    "apiVersion": "queueworker.dev/v1alpha1",
    "kind": "QueueWorker",
    "metadata": {"name": "beat-check"},
    "spec": {
        "app": "tasks:app",
        "queues": [QUEUE],
        "autoscaling": {"mode": "off"},
        "replicas": 0,
        "schedules": [{"name": "tick", "task": "tasks.add", "every": f"{EVERY:g}s", "args": [1, 1]}],
    },
}


def beat_pods(release: Release, selector: str) -> list[str]:
    pods = release.cluster.core.list_namespaced_pod(release.namespace, label_selector=selector).items
    return [
        p.metadata.name
        for p in pods
        if p.metadata.deletion_timestamp is None
        and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
    ]


def pod_log(release: Release, name: str) -> str:
    return str(release.cluster.core.read_namespaced_pod_log(name, release.namespace))


def fired(release: Release) -> list[float]:
    times = []
    for raw in redis(release, "LRANGE", QUEUE, "0", "-1").splitlines():
        message = json.loads(raw)
        assert message["headers"]["task"] == "tasks.add", message["headers"]
        assert json.loads(base64.b64decode(message["body"]))[0] == [1, 1]
        times.append(float(message["headers"]["qw_published_at"]))
    return sorted(times)


def test_two_beats_never_fire_a_due_time_twice(release: Release) -> None:
    cluster, ns = release.cluster, release.namespace
    redis(release, "DEL", QUEUE)
    apply_queueworker(release, TICKER)
    selector = "app.kubernetes.io/component=beat"
    # The operator makes the beat Deployment with the first QueueWorker that has schedules.
    (beat,) = wait_for(
        "the beat Deployment",
        lambda: cluster.apps.list_namespaced_deployment(ns, label_selector=selector).items,
        timeout=60,
    )
    wait_for(
        "the tick schedule to fire",
        lambda: fired(release),
        timeout=180,
        diagnose=lambda: describe_pods(cluster, ns),
    )
    twin = cluster.api.sanitize_for_serialization(beat)
    twin = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "beat-twin", "namespace": ns},
        "spec": copy.deepcopy(twin["spec"]),
    }
    twin["spec"]["template"]["metadata"]["labels"]["queueworker.dev/e2e-twin"] = "true"
    twin["spec"]["selector"] = {"matchLabels": {"queueworker.dev/e2e-twin": "true"}}
    twin["spec"]["replicas"] = 1
    cluster.apps.create_namespaced_deployment(ns, twin)
    try:
        wait_for(
            "the second beat to run",
            lambda: beat_pods(release, "queueworker.dev/e2e-twin=true"),
            timeout=180,
            diagnose=lambda: describe_pods(cluster, ns),
        )
        start = time.time()
        senders: set[str] = set()  # beat pods that sent the tick: the lock holder of the moment
        original = f"{selector},!queueworker.dev/e2e-twin"
        # Whichever held the lock, one of these deletions takes it from its holder: the lock changes hands.
        for victims in (original, "queueworker.dev/e2e-twin=true", None):
            time.sleep(35)
            names = beat_pods(release, victims or selector)
            senders |= {n for n in names if SENT in pod_log(release, n)}
            if victims:
                for name in names:
                    cluster.core.delete_namespaced_pod(name, ns)
        end = time.time()
    finally:
        cluster.apps.delete_namespaced_deployment("beat-twin", ns)
    times = [t for t in fired(release) if start <= t <= end]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    report(
        f"beat: {len(times)} fires in {end - start:.0f} s with two beats (every {EVERY:g} s) sent by "
        f"{len(senders)} pods in turn, smallest gap {min(gaps):.2f} s, largest {max(gaps):.2f} s"
    )
    assert len(senders) >= 2, f"the lock never changed hands: {senders}"
    assert len(times) >= 8, times
    assert min(gaps) > EVERY / 2, f"a due time fired twice: gaps {gaps}"
