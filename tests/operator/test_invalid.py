"""Invalid specs (the cluster may not enforce the CRD): a condition and a Warning Event naming each field,
nothing created for a new object, nothing touched for an update, and every other QueueWorker served."""

from __future__ import annotations

import kmock
from queueworker.settings import Settings

from hack.kube_emulator import DEPLOYMENTS, PDBS, QW
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


async def test_invalid_new_object_creates_nothing(cluster, start_operator, operator_env):
    settings = Settings.from_env(operator_env)
    async with start_operator():
        bad = manifest(
            "broken",
            concurrency=0,
            pool="fibers",
            autoscaling={"mode": "builtin", "minReplicas": 5, "maxReplicas": 2},
        )
        bad["spec"]["replicaz"] = 3
        await create(cluster, bad)
        await create(cluster, manifest("neighbour"))
        ready = await eventually(lambda: condition(cluster, "default", "broken", "Ready"))
        assert ready["status"] == "False" and ready["reason"] == "InvalidSpec"
        for path in ("spec.concurrency", "spec.pool", "spec.autoscaling.minReplicas", "spec.replicaz"):
            assert path in ready["message"], (path, ready["message"])
        warning = await eventually(lambda: events(cluster, "broken", "InvalidSpec"))
        assert warning[0]["type"] == "Warning" and "spec.pool" in warning[0]["message"]
        assert status(cluster, "default", "broken")["observedGeneration"] == 1

        await eventually(lambda: cluster.read(DEPLOYMENTS, "default", "neighbour-worker"))
        await eventually(lambda: not differences(cluster, settings) or None)
        assert not [k for k in managed_objects(cluster) if "broken" in k[2]]

        # fixing the spec makes it reconcile
        await patch(
            cluster,
            "default",
            "broken",
            {
                "spec": {
                    "concurrency": 2,
                    "pool": "threads",
                    "replicaz": None,
                    "autoscaling": {"minReplicas": 1},
                }
            },
        )
        await eventually(lambda: cluster.read(DEPLOYMENTS, "default", "broken-worker"))
        await eventually(
            lambda: condition(cluster, "default", "broken", "Ready").get("reason") != "InvalidSpec"
        )
        assert len(events(cluster, "broken", "InvalidSpec")) == 1


async def test_invalid_update_touches_nothing_running(cluster, start_operator):
    async with start_operator():
        await create(cluster, manifest("steady", routes=["steady.*"], concurrency=3))
        await eventually(lambda: cluster.read(PDBS, "default", "steady-worker"))
        await eventually(lambda: ("ConfigMap", "default", "queueworker-routes") in managed_objects(cluster))
        await eventually(lambda: status(cluster, "default", "steady").get("observedGeneration") == 1)
        versions = {
            k: cluster.versions(DEPLOYMENTS if k[0] == "Deployment" else PDBS, k[1], k[2])
            for k in managed_objects(cluster)
            if k[0] in ("Deployment", "PodDisruptionBudget")
        }
        routes_before = managed_objects(cluster)[("ConfigMap", "default", "queueworker-routes")]["data"]

        await patch(cluster, "default", "steady", {"spec": {"queues": [], "concurrency": 5}})
        ready = await eventually(
            lambda: (
                condition(cluster, "default", "steady", "Ready").get("reason") == "InvalidSpec"
                and condition(cluster, "default", "steady", "Ready")
            )
        )
        assert "spec.queues" in ready["message"]
        assert status(cluster, "default", "steady")["observedGeneration"] == 2
        await eventually(lambda: events(cluster, "steady", "InvalidSpec"))

        # a valid neighbour created afterwards is served, and re-renders the namespace's shared objects
        await create(cluster, manifest("later", routes=["later.*"]))
        await eventually(lambda: cluster.read(DEPLOYMENTS, "default", "later-worker"))
        routes = await eventually(
            lambda: (
                "later.*"
                in managed_objects(cluster)[("ConfigMap", "default", "queueworker-routes")]["data"][
                    "routes.json"
                ]
                and managed_objects(cluster)[("ConfigMap", "default", "queueworker-routes")]["data"]
            )
        )
        assert "steady.*" in routes["routes.json"], "the invalid QueueWorker's last valid routes are kept"
        assert routes_before != routes
        for (kind, ns, name), count in versions.items():
            assert cluster.versions(DEPLOYMENTS if kind == "Deployment" else PDBS, ns, name) == count, name
        assert (
            "3"
            in cluster.read(DEPLOYMENTS, "default", "steady-worker")["spec"]["template"]["spec"][
                "containers"
            ][0]["args"]
        )
        assert cluster.read(QW, "default", "steady")["spec"]["concurrency"] == 5


async def test_foreign_object_is_not_taken_over(cluster, start_operator):
    foreign = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "taken-worker",
            "namespace": "default",
            "labels": {"app": "legacy"},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": "legacy",
                    "uid": "0000-legacy",
                    "controller": True,
                }
            ],
        },
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "legacy"}}},
    }
    cluster.put_object(
        kmock.resource("", "v1", "pods"),
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "legacy", "namespace": "default", "uid": "0000-legacy"},
        },
    )
    cluster.put_object(DEPLOYMENTS, foreign)
    before = cluster.read(DEPLOYMENTS, "default", "taken-worker")
    async with start_operator():
        await create(cluster, manifest("taken"))
        ready = await eventually(
            lambda: (
                condition(cluster, "default", "taken", "Ready").get("reason") == "NameConflict"
                and condition(cluster, "default", "taken", "Ready")
            )
        )
        assert "taken-worker" in ready["message"] and "not taken over" in ready["message"]
        warning = await eventually(lambda: events(cluster, "taken", "NameConflict"))
        assert warning[0]["type"] == "Warning"
    assert cluster.read(DEPLOYMENTS, "default", "taken-worker") == before
