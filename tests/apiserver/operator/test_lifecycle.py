"""Create, update and delete flows of the real operator on a real API server: exactly the rendered
objects, each valid for Kubernetes 1.28 and 1.34, updates that touch only what changed, applied by
server-side apply (replicas left to whoever autoscales), and cascading deletes."""

from __future__ import annotations

from queueworker.settings import Settings

from tests.support.kubeapi import CONFIGMAPS, DEPLOYMENTS, EVENTS, HPAS, PDBS, QW, SCALEDOBJECTS
from tests.support.operator_harness import eventually
from tests.support.operator_helpers import (
    condition,
    create,
    delete,
    differences,
    events,
    expected_objects,
    managed_objects,
    managers,
    manifest,
    patch,
    status,
    validate_all,
)

SCHEDULES = [
    {"name": "digest", "task": "tasks.digest", "cron": "0 7 * * *"},
    {"name": "tick", "task": "tasks.tick", "every": "30s"},
]


def converged(kube, names, settings):
    problems = [p for ns in sorted({n for n, _ in names}) for p in differences(kube, ns, settings)]
    for ns, name in names:
        generation = (kube.read(QW, ns, name) or {}).get("metadata", {}).get("generation")
        if status(kube, ns, name).get("observedGeneration") != generation:
            problems.append(f"{name}: status not observed")
    assert not problems, problems
    return True


def beat_entries(redis_client, namespace):
    return sorted(k.decode() for k in redis_client.keys(f"redbeat:qw/{namespace}/*"))


def args(kube, ns, name):
    return kube.read(DEPLOYMENTS, ns, name)["spec"]["template"]["spec"]["containers"][0]["args"]


async def test_create_update_delete(kube, ns, other_ns, start_operator, operator_env, redis_client):
    settings = Settings.from_env(operator_env)
    async with start_operator(namespaces=[ns, other_ns]):
        spec = {"mode": "builtin", "minReplicas": 1, "maxReplicas": 5}
        create(kube, manifest("emails", ns, routes=["shop.email.*"], schedules=SCHEDULES, autoscaling=spec))
        create(kube, manifest("reports", ns, routes=["shop.reports.*"], autoscaling={"mode": "keda"}))
        create(kube, manifest("images", ns, autoscaling={"mode": "hpa", "minReplicas": 2}))
        create(kube, manifest("fixed", ns, replicas=3, autoscaling={"mode": "off"}))
        create(kube, manifest("other", other_ns, schedules=SCHEDULES[:1]))
        names = [(ns, n) for n in ("emails", "reports", "images", "fixed")] + [(other_ns, "other")]
        await eventually(lambda: converged(kube, names, settings))

        live = managed_objects(kube, ns)
        assert sorted(k for k, _, _ in live) == [
            "ConfigMap",
            *["Deployment"] * 5,
            "HorizontalPodAutoscaler",
            *["PodDisruptionBudget"] * 4,
            "ScaledObject",
        ]
        validate_all(live)
        # worker objects: a controller reference; shared objects: one non-controller reference per user
        uid = {n: kube.read(QW, n_ns, n)["metadata"]["uid"] for n_ns, n in names}
        worker = kube.read(DEPLOYMENTS, ns, "emails-worker")
        assert worker["metadata"]["ownerReferences"][0]["uid"] == uid["emails"]
        assert worker["metadata"]["ownerReferences"][0]["controller"] is True
        assert worker["spec"]["replicas"] == 1
        # applied by server-side apply; replicas handed to the builtin autoscaler's manager
        assert ("queueworker-operator", "Apply", "") in managers(worker)
        assert ("queueworker-autoscaler", "Apply", "scale") in managers(worker)
        routes = kube.read(CONFIGMAPS, ns, "queueworker-routes")
        assert {r["name"] for r in routes["metadata"]["ownerReferences"]} == {
            "emails",
            "reports",
            "images",
            "fixed",
        }
        assert "shop.email.*" in routes["data"]["routes.json"]
        assert not any(r["controller"] for r in routes["metadata"]["ownerReferences"])
        beat = kube.read(DEPLOYMENTS, ns, "queueworker-beat")
        assert [r["name"] for r in beat["metadata"]["ownerReferences"]] == ["emails"]
        assert kube.read(DEPLOYMENTS, other_ns, "queueworker-beat") is not None
        await eventually(
            lambda: (
                beat_entries(redis_client, ns)
                == [f"redbeat:qw/{ns}/emails/digest", f"redbeat:qw/{ns}/emails/tick"]
            )
        )
        await eventually(
            lambda: beat_entries(redis_client, other_ns) == [f"redbeat:qw/{other_ns}/other/digest"]
        )
        # the HPA's Deployment: created without replicas (the server's default), none of ours owns them
        images = kube.read(DEPLOYMENTS, ns, "images-worker")
        assert images["spec"]["replicas"] == 1
        assert not any(m[0].startswith("queueworker") and m[2] == "scale" for m in managers(images))
        assert kube.read(DEPLOYMENTS, ns, "fixed-worker")["spec"]["replicas"] == 3
        assert status(kube, ns, "fixed")["desiredReplicas"] == 3
        assert status(kube, ns, "emails")["selector"] == (
            "app.kubernetes.io/component=worker,app.kubernetes.io/instance=emails,"
            "app.kubernetes.io/name=queueworker"
        )
        assert condition(kube, ns, "fixed", "Autoscaling")["reason"] == "Disabled"
        assert condition(kube, ns, "emails", "Ready")["reason"] == "WorkersNotReady"
        await eventually(lambda: events(kube, ns, "emails", "Created"))
        validate_all(
            {
                ("Event", ns, e["metadata"]["name"]): {"apiVersion": "v1", "kind": "Event", **e}
                for e in kube.live(EVENTS, ns)
            }
        )

        # an update changes only what changed: the PDB is not written, the Deployment's spec once
        pdb_version = kube.read(PDBS, ns, "emails-worker")["metadata"]["resourceVersion"]
        generation = kube.read(DEPLOYMENTS, ns, "emails-worker")["metadata"]["generation"]
        patch(kube, ns, "emails", {"spec": {"concurrency": 7}})
        await eventually(lambda: "7" in args(kube, ns, "emails-worker"))
        await eventually(lambda: converged(kube, names, settings))
        assert kube.read(PDBS, ns, "emails-worker")["metadata"]["resourceVersion"] == pdb_version
        assert kube.read(DEPLOYMENTS, ns, "emails-worker")["metadata"]["generation"] == generation + 1
        assert kube.read(DEPLOYMENTS, ns, "emails-worker")["spec"]["replicas"] == 1
        await eventually(lambda: events(kube, ns, "emails", "Updated"))

        # a mode change swaps the autoscaler object; replicas stay what they were (no reset to 1)
        patch(kube, ns, "reports", {"spec": {"autoscaling": {"mode": "hpa"}}})
        await eventually(
            lambda: (
                kube.read(SCALEDOBJECTS, ns, "reports-worker") is None
                and kube.read(HPAS, ns, "reports-worker") is not None
            )
        )
        await eventually(lambda: converged(kube, names, settings))
        validate_all(managed_objects(kube, ns))
        patch(kube, ns, "fixed", {"spec": {"autoscaling": {"mode": "builtin", "minReplicas": 0}}})
        await eventually(
            lambda: (
                ("queueworker-autoscaler", "Apply", "scale")
                in managers(kube.read(DEPLOYMENTS, ns, "fixed-worker"))
            )
        )
        await eventually(lambda: converged(kube, names, settings))
        fixed = kube.read(DEPLOYMENTS, ns, "fixed-worker")
        assert fixed["spec"]["replicas"] in (0, 3)  # the autoscaler's (to zero: an empty queue), never 1
        patch(kube, ns, "fixed", {"spec": {"autoscaling": {"mode": "off"}, "replicas": 3}})
        await eventually(lambda: kube.read(DEPLOYMENTS, ns, "fixed-worker")["spec"]["replicas"] == 3)

        # mode off: `kubectl scale qw/fixed --replicas=5` goes through /scale into spec.replicas
        scale = kube.patch(QW, ns, "fixed", {"spec": {"replicas": 5}}, sub="scale")
        assert scale["kind"] == "Scale"
        await eventually(lambda: kube.read(DEPLOYMENTS, ns, "fixed-worker")["spec"]["replicas"] == 5)
        await eventually(lambda: status(kube, ns, "fixed")["desiredReplicas"] == 5)

        # deletion: the finalizer is released, owned objects cascade, shared objects are re-rendered
        delete(kube, ns, "emails")
        await eventually(lambda: kube.read(QW, ns, "emails") is None)
        await eventually(lambda: kube.read(DEPLOYMENTS, ns, "queueworker-beat") is None)
        await eventually(
            lambda: (
                [
                    r["name"]
                    for r in kube.read(CONFIGMAPS, ns, "queueworker-routes")["metadata"]["ownerReferences"]
                ]
                == ["fixed", "images", "reports"]
            )
        )
        assert "shop.email.*" not in kube.read(CONFIGMAPS, ns, "queueworker-routes")["data"]["routes.json"]
        await eventually(lambda: kube.read(DEPLOYMENTS, ns, "emails-worker") is None)  # the garbage collector
        await eventually(lambda: kube.read(PDBS, ns, "emails-worker") is None)
        assert kube.read(DEPLOYMENTS, other_ns, "queueworker-beat") is not None
        await eventually(lambda: beat_entries(redis_client, ns) == [])
        assert beat_entries(redis_client, other_ns) == [f"redbeat:qw/{other_ns}/other/digest"]
        names.remove((ns, "emails"))
        await eventually(lambda: converged(kube, names, settings))

        for name in ("reports", "images", "fixed"):
            delete(kube, ns, name)
        await eventually(lambda: not kube.live(QW, ns))
        await eventually(lambda: kube.read(CONFIGMAPS, ns, "queueworker-routes") is None)
        await eventually(lambda: set(expected_objects(kube, ns, settings)) == set(managed_objects(kube, ns)))


async def test_removed_fields_are_removed_and_others_kept(kube, ns, start_operator, operator_env):
    settings = Settings.from_env(operator_env)
    async with start_operator():
        toleration = {"key": "batch", "operator": "Exists", "effect": "NoSchedule"}
        create(kube, manifest("sel", ns, nodeSelector={"pool": "batch"}, tolerations=[toleration]))
        await eventually(
            lambda: not differences(kube, ns, settings) and kube.read(DEPLOYMENTS, ns, "sel-worker")
        )
        pod = kube.read(DEPLOYMENTS, ns, "sel-worker")["spec"]["template"]["spec"]
        assert pod["nodeSelector"] == {"pool": "batch"} and pod["tolerations"]
        # another manager's annotation on the Deployment must survive our applies
        kube.patch(DEPLOYMENTS, ns, "sel-worker", {"metadata": {"annotations": {"example.com/owner": "ops"}}})
        patch(kube, ns, "sel", {"spec": {"nodeSelector": None, "tolerations": None}})
        await eventually(
            lambda: "nodeSelector" not in kube.read(DEPLOYMENTS, ns, "sel-worker")["spec"]["template"]["spec"]
        )
        deployment = kube.read(DEPLOYMENTS, ns, "sel-worker")
        assert "tolerations" not in deployment["spec"]["template"]["spec"]
        assert deployment["metadata"]["annotations"]["example.com/owner"] == "ops"
        await eventually(lambda: not differences(kube, ns, settings))
