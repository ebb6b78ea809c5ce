"""Restarting the operator creates no duplicates and writes nothing that did not change; the drift timer
puts back what someone else changed, from the watch's cache, and writes nothing while nothing drifts."""

from __future__ import annotations

import kopf
from queueworker.settings import Settings
from queueworker_operator import metrics

from tests.support.kubeapi import CONFIGMAPS, DEPLOYMENTS, EVENTS, QW
from tests.support.operator_harness import eventually
from tests.support.operator_helpers import (
    condition,
    create,
    differences,
    events,
    managed_objects,
    manifest,
    patch,
    status,
)

SCHEDULE = [{"name": "nightly", "task": "tasks.nightly", "cron": "0 3 * * *"}]


def reconciled_ok() -> float:
    return metrics.REGISTRY.get_sample_value("queueworker_reconciles_total", {"result": "ok"}) or 0.0


def versions(kube, ns) -> dict:
    """resourceVersion of every Deployment and QueueWorker of the namespace (any write changes it)."""
    return {
        (resource.plural, obj["metadata"]["name"]): obj["metadata"]["resourceVersion"]
        for resource in (DEPLOYMENTS, QW)
        for obj in kube.live(resource, ns)
    }


async def settle(memo, namespaces) -> None:
    """Wait until a namespace sync and two autoscaler ticks have run after everything queued so far."""
    op = await eventually(lambda: memo.get("operator"))
    for namespace in namespaces:
        await op.cluster.request_namespace(namespace)
    target = op.autoscaler.ticks + 2
    await eventually(lambda: op.autoscaler.ticks >= target)


async def test_restart_changes_nothing(kube, ns, start_operator, operator_env, redis_client):
    settings = Settings.from_env(operator_env)
    names = ["alpha", "beta", "gamma"]
    first = kopf.Memo()
    async with start_operator(memo=first):
        create(kube, manifest("alpha", ns, routes=["a.*"], schedules=SCHEDULE))
        create(kube, manifest("beta", ns, autoscaling={"mode": "keda"}))
        create(kube, manifest("gamma", ns, replicas=2, autoscaling={"mode": "off"}))
        await eventually(
            lambda: (
                not differences(kube, ns, settings)
                and all(status(kube, ns, n).get("observedGeneration") == 1 for n in names)
            )
        )
        await eventually(lambda: redis_client.keys(f"redbeat:qw/{ns}/*"))
        await settle(first, [ns])
    objects_before = managed_objects(kube, ns)
    versions_before = versions(kube, ns)
    events_before = len(kube.live(EVENTS, ns))
    beat_before = {k: redis_client.hgetall(k) for k in redis_client.keys(f"redbeat:qw/{ns}/*")}
    ok_before = reconciled_ok()

    memo = kopf.Memo()
    async with start_operator(memo=memo):
        await eventually(lambda: reconciled_ok() >= ok_before + len(names))  # every QueueWorker resumed
        await settle(memo, [ns])
        assert managed_objects(kube, ns).keys() == objects_before.keys()
        assert versions(kube, ns) == versions_before, "a restart must not write unchanged objects"
        assert len(kube.live(EVENTS, ns)) == events_before
        assert {k: redis_client.hgetall(k) for k in redis_client.keys(f"redbeat:qw/{ns}/*")} == beat_before


async def test_drift_is_corrected_from_the_cache(kube, ns, start_operator, operator_env):
    operator_env["QUEUEWORKER_DRIFT_INTERVAL"] = "0.5"
    settings = Settings.from_env(operator_env)
    memo = kopf.Memo()
    async with start_operator(memo=memo):
        create(kube, manifest("drifty", ns, concurrency=3, routes=["d.*"]))
        await eventually(
            lambda: (
                not differences(kube, ns, settings)
                and status(kube, ns, "drifty").get("observedGeneration") == 1
            )
        )
        op = memo["operator"]
        requests: list[tuple[str, str]] = []
        request = op.cluster.kube.request

        async def counting(method, path, *args, **kwargs):
            requests.append((method, path))
            return await request(method, path, *args, **kwargs)

        op.cluster.kube.request = counting
        # someone edits the worker Deployment by hand: its grace period and an extra label
        kube.patch(
            DEPLOYMENTS,
            ns,
            "drifty-worker",
            {
                "metadata": {"labels": {"team": "ops"}},
                "spec": {"template": {"spec": {"terminationGracePeriodSeconds": 1}}},
            },
        )
        kube.patch(CONFIGMAPS, ns, "queueworker-routes", {"data": {"routes.json": "{}"}})
        await eventually(
            lambda: (
                kube.read(DEPLOYMENTS, ns, "drifty-worker")["spec"]["template"]["spec"][
                    "terminationGracePeriodSeconds"
                ]
                == 300
            )
        )
        await eventually(
            lambda: "d.*" in kube.read(CONFIGMAPS, ns, "queueworker-routes")["data"]["routes.json"]
        )
        assert kube.read(DEPLOYMENTS, ns, "drifty-worker")["metadata"]["labels"]["team"] == "ops"
        await eventually(lambda: not differences(kube, ns, settings))
        await eventually(lambda: events(kube, ns, "drifty", "Corrected"))
        # once corrected, drift checks send nothing at all: they read the watch's cache
        await eventually(lambda: not differences(kube, ns, settings))
        version = kube.read(DEPLOYMENTS, ns, "drifty-worker")["metadata"]["resourceVersion"]
        ticks = op.autoscaler.ticks
        await eventually(lambda: op.autoscaler.ticks >= ticks + 2)  # settled: the last writes are seen
        requests.clear()
        target = op.autoscaler.ticks + 3  # 1.5 s: three drift checks
        await eventually(lambda: op.autoscaler.ticks >= target)
        writes = [r for r in requests if r[0] != "GET" and "/queueworkers/" not in r[1]]
        assert writes == [], writes
        assert not [r for r in requests if "deployments" in r[1] or "configmaps" in r[1]], requests
        assert kube.read(DEPLOYMENTS, ns, "drifty-worker")["metadata"]["resourceVersion"] == version


async def test_invalid_update_survives_a_restart(kube, ns, start_operator, redis_client):
    first = kopf.Memo()
    async with start_operator(memo=first):
        create(kube, manifest("keeper", ns, routes=["keep.*"], schedules=SCHEDULE))
        await eventually(lambda: redis_client.keys(f"redbeat:qw/{ns}/keeper/*"))
        patch(kube, ns, "keeper", {"spec": {"queues": ["keep:a"], "autoscaling": {"mode": "hpa"}}})
        await eventually(lambda: condition(kube, ns, "keeper", "Ready").get("reason") == "InvalidSpec")
        await settle(first, [ns])
    routes = kube.read(CONFIGMAPS, ns, "queueworker-routes")["data"]["routes.json"]
    assert "keep.*" in routes
    second = kopf.Memo()
    async with start_operator(memo=second):
        await eventually(lambda: condition(kube, ns, "keeper", "Ready").get("reason") == "InvalidSpec")
        await settle(second, [ns])
        assert kube.read(CONFIGMAPS, ns, "queueworker-routes")["data"]["routes.json"] == routes
        assert redis_client.keys(f"redbeat:qw/{ns}/keeper/*"), "the last valid schedules keep firing"
        assert kube.read(DEPLOYMENTS, ns, "keeper-worker") is not None
