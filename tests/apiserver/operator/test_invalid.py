"""Invalid specs: what the CRD lets through but the operator cannot build (mode hpa on a queue name that is
not a label value; the API server itself refuses the rest, see tests/apiserver) gets a condition and a
Warning Event naming each field, nothing created for a new object, nothing touched for an update, and
every other QueueWorker served."""

from __future__ import annotations

from queueworker.settings import Settings

from tests.support.kubeapi import DEPLOYMENTS, PDBS, PODS, QW
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

UNBUILDABLE = {"queues": ["mail:high", "mail:low"], "autoscaling": {"mode": "hpa"}}


async def test_invalid_new_object_creates_nothing(kube, ns, start_operator, operator_env):
    settings = Settings.from_env(operator_env)
    async with start_operator():
        create(kube, manifest("broken", ns, **UNBUILDABLE))
        create(kube, manifest("neighbour", ns))
        ready = await eventually(lambda: condition(kube, ns, "broken", "Ready"))
        assert ready["status"] == "False" and ready["reason"] == "InvalidSpec"
        for path in ("spec.queues[0]", "spec.queues[1]"):
            assert path in ready["message"], (path, ready["message"])
        warning = await eventually(lambda: events(kube, ns, "broken", "InvalidSpec"))
        assert warning[0]["type"] == "Warning" and "mode keda or builtin" in warning[0]["message"]
        assert status(kube, ns, "broken")["observedGeneration"] == 1

        await eventually(lambda: kube.read(DEPLOYMENTS, ns, "neighbour-worker"))
        await eventually(lambda: not differences(kube, ns, settings) or None)
        assert not [k for k in managed_objects(kube, ns) if "broken" in k[2]]

        # fixing the spec makes it reconcile
        patch(kube, ns, "broken", {"spec": {"autoscaling": {"mode": "keda"}}})
        await eventually(lambda: kube.read(DEPLOYMENTS, ns, "broken-worker"))
        await eventually(lambda: condition(kube, ns, "broken", "Ready").get("reason") != "InvalidSpec")
        assert len(events(kube, ns, "broken", "InvalidSpec")) == 1


async def test_invalid_update_touches_nothing_running(kube, ns, start_operator):
    async with start_operator():
        create(kube, manifest("steady", ns, routes=["steady.*"], concurrency=3))
        await eventually(lambda: kube.read(PDBS, ns, "steady-worker"))
        await eventually(lambda: ("ConfigMap", ns, "queueworker-routes") in managed_objects(kube, ns))
        await eventually(lambda: status(kube, ns, "steady").get("observedGeneration") == 1)
        versions = {
            k: obj["metadata"]["resourceVersion"]
            for k, obj in managed_objects(kube, ns).items()
            if k[0] in ("Deployment", "PodDisruptionBudget")
        }
        routes_before = managed_objects(kube, ns)[("ConfigMap", ns, "queueworker-routes")]["data"]

        patch(kube, ns, "steady", {"spec": {**UNBUILDABLE, "concurrency": 5}})
        ready = await eventually(
            lambda: (
                condition(kube, ns, "steady", "Ready").get("reason") == "InvalidSpec"
                and condition(kube, ns, "steady", "Ready")
            )
        )
        assert "spec.queues[0]" in ready["message"]
        assert status(kube, ns, "steady")["observedGeneration"] == 2
        await eventually(lambda: events(kube, ns, "steady", "InvalidSpec"))

        # a valid neighbour created afterwards is served, and re-renders the namespace's shared objects
        create(kube, manifest("later", ns, routes=["later.*"]))
        await eventually(lambda: kube.read(DEPLOYMENTS, ns, "later-worker"))

        def routes():
            data = managed_objects(kube, ns)[("ConfigMap", ns, "queueworker-routes")]["data"]
            return "later.*" in data["routes.json"] and data

        routes_now = await eventually(routes)
        assert "steady.*" in routes_now["routes.json"], "the invalid QueueWorker's last valid routes are kept"
        assert routes_before != routes_now
        for key, version in versions.items():
            assert managed_objects(kube, ns)[key]["metadata"]["resourceVersion"] == version, key
        args = kube.read(DEPLOYMENTS, ns, "steady-worker")["spec"]["template"]["spec"]["containers"][0][
            "args"
        ]
        assert "3" in args
        assert kube.read(QW, ns, "steady")["spec"]["concurrency"] == 5


async def test_foreign_object_is_not_taken_over(kube, ns, start_operator):
    owner = kube.create(
        PODS,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "legacy", "namespace": ns},
            "spec": {"automountServiceAccountToken": False, "containers": [{"name": "c", "image": "legacy"}]},
        },
    )
    template = {
        "metadata": {"labels": {"app": "legacy"}},
        "spec": {"containers": [{"name": "c", "image": "x"}]},
    }
    foreign = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "taken-worker",
            "namespace": ns,
            "labels": {"app": "legacy"},
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": "legacy",
                    "uid": owner["metadata"]["uid"],
                    "controller": True,
                }
            ],
        },
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "legacy"}}, "template": template},
    }
    before = kube.create(DEPLOYMENTS, foreign)
    async with start_operator():
        create(kube, manifest("taken", ns))
        ready = await eventually(
            lambda: (
                condition(kube, ns, "taken", "Ready").get("reason") == "NameConflict"
                and condition(kube, ns, "taken", "Ready")
            )
        )
        assert "taken-worker" in ready["message"] and "not taken over" in ready["message"]
        warning = await eventually(lambda: events(kube, ns, "taken", "NameConflict"))
        assert warning[0]["type"] == "Warning"
    after = kube.read(DEPLOYMENTS, ns, "taken-worker")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
