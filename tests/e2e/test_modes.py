"""The two autoscaling modes that hand the replicas to the ecosystem, each read by the real component: in
`mode: keda` KEDA's operator reads the ScaledObject and polls the Prometheus Operator's Prometheus; in
`mode: hpa` the HPA controller reads External metrics that prometheus-adapter serves from that same
Prometheus. Both QueueWorkers are the examples under examples/modes/ with shorter delays.

A cluster has one External-metrics API, KEDA's by default; the hpa test hands it to the adapter for its
duration (`python -m hack.cluster external-metrics adapter`) and back. Reaction times are printed under
"e2e figures", never asserted."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.cluster import LOCAL_CONTEXT, describe_pods, hand_external_metrics, wait_for
from tests.e2e.conftest import Release, report
from tests.e2e.flows import (
    GROUP,
    PLURAL,
    VERSION,
    apply_queueworker,
    completed,
    depth,
    publish,
    worker_deployment,
    worker_pods,
)
from tests.e2e.test_autoscaling import live, ready_at

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "modes"
SECONDS = 2.0  # each task's length; a burst is enough tasks to keep one pod busy for well over a minute


def example(name: str, **autoscaling: Any) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((EXAMPLES / name).read_text())
    doc = copy.deepcopy(doc)
    doc["spec"]["autoscaling"].update(autoscaling)
    return doc


def need(release: Release, group: str, component: str) -> None:
    groups = {v.split("/")[0] for v in release.cluster.kubectl("api-versions").stdout.split() if "/" in v}
    if group in groups:
        return
    reason = f"the cluster has no {component} ({group}): `make cluster-up` installs it"
    if release.cluster.context == LOCAL_CONTEXT:
        pytest.fail(reason)
    pytest.skip(reason)


def keda_version(release: Release) -> str:
    """The version KEDA's operator logs at start ("KEDA Version: 2.x.y")."""
    log = release.cluster.kubectl("logs", "-n", "keda", "deployment/keda-operator", check=False).stdout
    for line in log.splitlines():
        if "KEDA Version" in line:
            return line.split("KEDA Version", 1)[1].strip(' :"').split()[0].strip('",')
    return "(version not in its log)"


def condition(obj: dict[str, Any], kind: str) -> str | None:
    for cond in obj.get("status", {}).get("conditions") or []:
        if cond.get("type") == kind:
            return str(cond.get("status"))
    return None


@pytest.fixture
def queueworker(release: Release) -> Iterator[list[str]]:
    """Names of the QueueWorkers a test applies, deleted afterwards (their pods free the node)."""
    names: list[str] = []
    yield names
    for name in names:
        release.cluster.custom.delete_namespaced_custom_object(
            GROUP, VERSION, release.namespace, PLURAL, name
        )
    wait_for(
        "the mode examples' workers to go",
        lambda: not any(live(worker_pods(release, n)) for n in names),
        timeout=180,
    )


def burst(release: Release, name: str, queue: str, count: int) -> tuple[float, float, int]:
    """Publish `count` tasks of SECONDS each; return (first publish, drained, peak pods)."""
    before = completed(release, queue)
    first = publish(release, "tasks.taskA", count, [SECONDS], queue=queue)
    peak: list[Any] = []

    def drained() -> bool:
        pods = live(worker_pods(release, name))
        if len(pods) > len(peak):
            peak[:] = pods
        return completed(release, queue) >= before + count and depth(release, queue) == 0

    wait_for(
        f"{name}: the burst to drain",
        drained,
        timeout=420,
        interval=1.0,
        diagnose=lambda: describe_pods(release.cluster, release.namespace),
    )
    assert completed(release, queue) == before + count, "a task was lost or ran twice"
    return first, time.time(), len(peak)


def first_ready_after(release: Release, name: str, after: float) -> float:
    readies = sorted(t for p in worker_pods(release, name) if (t := ready_at(p)) is not None and t >= after)
    assert readies, f"{name}: no worker pod became Ready after the first publish"
    return readies[0] - after


def scale_up_and_back(release: Release, doc: dict[str, Any], scaler: str, diagnose: Callable[[], str]) -> str:
    """A burst of 80 s of work for one pod on the QueueWorker `doc`: it must scale past one pod and come
    back to minReplicas; returns the measured reaction times as a line of figures."""
    name, queue = doc["metadata"]["name"], doc["spec"]["queues"][0]
    least = doc["spec"]["autoscaling"]["minReplicas"]
    count = 40 * doc["spec"]["concurrency"]
    first, drained, peak = burst(release, name, queue, count)
    assert peak >= 2, f"{scaler} never scaled {name} past {peak} pods for {count * SECONDS:g} task-seconds"
    up = first_ready_after(release, name, first)
    wait_for(
        f"{name} back at minReplicas {least}",
        lambda: worker_deployment(release, name).spec.replicas == least,
        timeout=300,
        diagnose=diagnose,
    )
    return (
        f"first new worker Ready {up:.1f} s after the first publish; peak {peak} pods; drained "
        f"{drained - first:.1f} s after it; back at {least} {time.time() - drained:.1f} s after the drain"
    )


def test_keda_scales_its_worker_deployment_from_zero_and_back(
    release: Release, queueworker: list[str]
) -> None:
    need(release, "keda.sh", "KEDA")
    doc = example("keda.yaml", minReplicas=0, maxReplicas=4, targetWaitSeconds=10, scaleDownDelaySeconds=30)
    name = doc["metadata"]["name"]
    apply_queueworker(release, doc)
    queueworker.append(name)
    ns = release.namespace

    def scaled_object() -> dict[str, Any] | None:
        items = release.cluster.custom.list_namespaced_custom_object(
            "keda.sh", "v1alpha1", ns, "scaledobjects", label_selector=f"app.kubernetes.io/instance={name}"
        )["items"]
        return items[0] if items and condition(items[0], "Ready") == "True" else None

    so = wait_for(f"{name}: KEDA to report its ScaledObject Ready", scaled_object, timeout=120)
    assert so["status"].get("scaleTargetKind", "").endswith("Deployment"), so["status"]
    wait_for(
        f"{name} at 0 replicas (KEDA, inactive)",
        lambda: worker_deployment(release, name).spec.replicas == 0,
        180,
    )
    figures = scale_up_and_back(release, doc, "KEDA", lambda: str(scaled_object()))
    report(f"\nmode keda (KEDA {keda_version(release)}, 0 -> N -> 0, cooldownPeriod 30 s): {figures}")


@pytest.fixture
def adapter_serves_external_metrics(release: Release) -> Iterator[None]:
    need(release, "monitoring.coreos.com", "Prometheus Operator")
    if release.cluster.context != LOCAL_CONTEXT:
        pytest.skip("mode hpa needs prometheus-adapter serving external.metrics.k8s.io (the local cluster)")

    def hand(provider: str) -> None:
        out = hand_external_metrics(provider, timeout=180)
        assert out.returncode == 0, f"external-metrics {provider}: {out.stderr}"

    hand("adapter")
    try:
        yield
    finally:
        hand("keda")


def test_hpa_scales_on_the_adapters_external_metrics(
    release: Release, queueworker: list[str], adapter_serves_external_metrics: None
) -> None:
    doc = example("hpa.yaml", minReplicas=1, maxReplicas=4, targetWaitSeconds=10, scaleDownDelaySeconds=30)
    name, queue = doc["metadata"]["name"], doc["spec"]["queues"][0]
    apply_queueworker(release, doc)
    queueworker.append(name)
    ns = release.namespace
    raw = (
        f"/apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/celery_queue_length"
        f"?labelSelector=queue_name%3D{queue}"
    )

    def metric() -> list[dict[str, Any]]:
        out = release.cluster.kubectl("get", "--raw", raw, check=False)
        return list(yaml.safe_load(out.stdout)["items"]) if out.returncode == 0 else []

    items = wait_for(f"the adapter to serve celery_queue_length for {queue}", metric, timeout=180, interval=3)
    assert items[0]["metricLabels"]["queue_name"] == queue, items

    def hpa() -> dict[str, Any] | None:
        out = release.cluster.kubectl(
            "get", "hpa", "-n", ns, "-l", f"app.kubernetes.io/instance={name}", "-o", "json"
        )
        found = yaml.safe_load(out.stdout)["items"]
        return found[0] if found and condition(found[0], "ScalingActive") == "True" else None

    wait_for(f"{name}: the HPA reading its External metrics (ScalingActive)", hpa, timeout=120, interval=3)
    wait_for(f"{name} at 1 replica", lambda: worker_deployment(release, name).status.ready_replicas == 1, 180)
    figures = scale_up_and_back(release, doc, "the HPA", lambda: str(hpa()))
    report(f"mode hpa (prometheus-adapter, 1 -> N -> 1, stabilization window 30 s): {figures}")
