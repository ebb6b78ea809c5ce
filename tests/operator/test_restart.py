"""Restarting the operator creates no duplicates and writes nothing that did not change; the drift timer
puts back what someone else changed, and nothing else."""

from __future__ import annotations

import kopf
from queueworker.settings import Settings
from queueworker_operator import metrics

from hack.kube_emulator import CONFIGMAPS, DEPLOYMENTS, EVENTS, QW
from tests.operator.harness import eventually
from tests.operator.helpers import (
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


def versions(cluster) -> dict:
    found = {}
    for resource in (DEPLOYMENTS, QW):
        for obj in cluster.live(resource):
            key = (obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"])
            found[key] = cluster.versions(resource, key[1], key[2])
    return found


async def settle(cluster, memo, namespaces) -> None:
    """Wait until a namespace sync and two autoscaler ticks have run after everything queued so far."""
    rt = await eventually(lambda: memo.get("state"))
    for namespace in namespaces:
        await rt.request_namespace(namespace)
    target = rt.ticks + 2
    await eventually(lambda: rt.ticks >= target)


async def test_restart_changes_nothing(cluster, start_operator, operator_env, redis_client):
    settings = Settings.from_env(operator_env)
    names = ["alpha", "beta", "gamma"]
    first = kopf.Memo()
    async with start_operator(memo=first):
        await create(cluster, manifest("alpha", routes=["a.*"], schedules=SCHEDULE))
        await create(cluster, manifest("beta", autoscaling={"mode": "keda"}))
        await create(cluster, manifest("gamma", replicas=2, autoscaling={"mode": "off"}))
        await eventually(
            lambda: (
                not differences(cluster, settings)
                and all(status(cluster, "default", n).get("observedGeneration") == 1 for n in names)
            )
        )
        await eventually(lambda: redis_client.keys("redbeat:qw/default/*"))
        await settle(cluster, first, ["default"])
    objects_before = managed_objects(cluster)
    versions_before = versions(cluster)
    events_before = len(cluster.live(EVENTS))
    beat_before = {k: redis_client.hgetall(k) for k in redis_client.keys("redbeat:qw/default/*")}
    ok_before = reconciled_ok()

    memo = kopf.Memo()
    async with start_operator(memo=memo):
        await eventually(lambda: reconciled_ok() >= ok_before + len(names))  # every QueueWorker resumed
        await settle(cluster, memo, ["default"])
        assert managed_objects(cluster).keys() == objects_before.keys()
        assert versions(cluster) == versions_before, "a restart must not write unchanged objects"
        assert len(cluster.live(EVENTS)) == events_before
        assert {k: redis_client.hgetall(k) for k in redis_client.keys("redbeat:qw/default/*")} == beat_before


async def test_drift_is_corrected(cluster, start_operator, operator_env):
    operator_env["QUEUEWORKER_DRIFT_INTERVAL"] = "0.5"
    settings = Settings.from_env(operator_env)
    memo = kopf.Memo()
    async with start_operator(memo=memo):
        await create(cluster, manifest("drifty", concurrency=3))
        await eventually(
            lambda: (
                not differences(cluster, settings)
                and status(cluster, "default", "drifty").get("observedGeneration") == 1
            )
        )
        # someone edits the worker Deployment by hand: its args and an extra label
        response = await cluster.patch(
            "/apis/apps/v1/namespaces/default/deployments/drifty-worker",
            json={
                "metadata": {"labels": {"team": "ops"}},
                "spec": {"template": {"spec": {"terminationGracePeriodSeconds": 1}}},
            },
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert response.status == 200
        await eventually(
            lambda: (
                cluster.read(DEPLOYMENTS, "default", "drifty-worker")["spec"]["template"]["spec"][
                    "terminationGracePeriodSeconds"
                ]
                == 300
            )
        )
        assert cluster.read(DEPLOYMENTS, "default", "drifty-worker")["metadata"]["labels"]["team"] == "ops"
        assert not differences(cluster, settings)
        await eventually(lambda: events(cluster, "drifty", "Corrected"))
        # once corrected, further drift checks write nothing
        count = cluster.versions(DEPLOYMENTS, "default", "drifty-worker")
        rt = memo["state"]
        target = rt.ticks + 4
        await eventually(lambda: rt.ticks >= target)
        assert cluster.versions(DEPLOYMENTS, "default", "drifty-worker") == count


async def test_invalid_update_survives_a_restart(cluster, start_operator, redis_client):
    first = kopf.Memo()
    async with start_operator(memo=first):
        await create(cluster, manifest("keeper", routes=["keep.*"], schedules=SCHEDULE))
        await eventually(lambda: redis_client.keys("redbeat:qw/default/keeper/*"))
        await patch(cluster, "default", "keeper", {"spec": {"queues": []}})
        await eventually(
            lambda: condition(cluster, "default", "keeper", "Ready").get("reason") == "InvalidSpec"
        )
        await settle(cluster, first, ["default"])
    routes = cluster.read(CONFIGMAPS, "default", "queueworker-routes")["data"]["routes.json"]
    assert "keep.*" in routes
    second = kopf.Memo()
    async with start_operator(memo=second):
        await eventually(
            lambda: condition(cluster, "default", "keeper", "Ready").get("reason") == "InvalidSpec"
        )
        await settle(cluster, second, ["default"])
        assert cluster.read(CONFIGMAPS, "default", "queueworker-routes")["data"]["routes.json"] == routes
        assert redis_client.keys("redbeat:qw/default/keeper/*"), "the last valid schedules keep firing"
        assert cluster.read(DEPLOYMENTS, "default", "keeper-worker") is not None
