"""Create, update and delete flows of the real operator on the API emulator: exactly the rendered objects,
each valid for Kubernetes 1.28 and 1.34, updates that touch only what changed, and cascading deletes."""

from __future__ import annotations

from queueworker.settings import Settings

from hack.kube_emulator import CONFIGMAPS, DEPLOYMENTS, EVENTS, HPAS, PDBS, QW, SCALEDOBJECTS
from tests.operator.harness import eventually
from tests.operator.helpers import (
    condition,
    create,
    delete,
    differences,
    events,
    expected_objects,
    managed_objects,
    manifest,
    patch,
    status,
    validate_all,
)

SCHEDULES = [
    {"name": "digest", "task": "tasks.digest", "cron": "0 7 * * *"},
    {"name": "tick", "task": "tasks.tick", "every": "30s"},
]


def converged(cluster, names, settings):
    problems = differences(cluster, settings)
    for ns, name in names:
        st = status(cluster, ns, name)
        if st.get("observedGeneration") != (cluster.read(QW, ns, name) or {}).get("metadata", {}).get(
            "generation"
        ):
            problems.append(f"{name}: status not observed")
    assert not problems, problems
    return True


def beat_entries(redis_client, namespace):
    return sorted(k.decode() for k in redis_client.keys(f"redbeat:qw/{namespace}/*"))


async def test_create_update_delete(cluster, start_operator, operator_env, redis_client):
    settings = Settings.from_env(operator_env)
    async with start_operator():
        await create(
            cluster,
            manifest(
                "emails",
                routes=["shop.email.*"],
                schedules=SCHEDULES,
                autoscaling={"mode": "builtin", "minReplicas": 1, "maxReplicas": 5},
            ),
        )
        await create(cluster, manifest("reports", routes=["shop.reports.*"], autoscaling={"mode": "keda"}))
        await create(cluster, manifest("images", autoscaling={"mode": "hpa", "minReplicas": 2}))
        await create(cluster, manifest("fixed", replicas=3, autoscaling={"mode": "off"}))
        await create(cluster, manifest("other", namespace="team-b", schedules=SCHEDULES[:1]))
        names = [("default", n) for n in ("emails", "reports", "images", "fixed")] + [("team-b", "other")]
        await eventually(lambda: converged(cluster, names, settings))

        live = managed_objects(cluster)
        kinds = sorted(k for k, ns, _ in live if ns == "default")
        assert kinds == [
            "ConfigMap",
            "Deployment",
            "Deployment",
            "Deployment",
            "Deployment",
            "Deployment",
            "HorizontalPodAutoscaler",
            "PodDisruptionBudget",
            "PodDisruptionBudget",
            "PodDisruptionBudget",
            "PodDisruptionBudget",
            "ScaledObject",
        ]
        validate_all(live)
        # worker objects: a controller reference; shared objects: one non-controller reference per user
        uid = {n: cluster.read(QW, ns, n)["metadata"]["uid"] for ns, n in names}
        worker = cluster.read(DEPLOYMENTS, "default", "emails-worker")
        assert worker["metadata"]["ownerReferences"][0]["uid"] == uid["emails"]
        assert worker["metadata"]["ownerReferences"][0]["controller"] is True
        assert worker["spec"]["replicas"] == 1
        routes = cluster.read(CONFIGMAPS, "default", "queueworker-routes")
        assert {r["name"] for r in routes["metadata"]["ownerReferences"]} == {
            "emails",
            "reports",
            "images",
            "fixed",
        }
        assert "shop.email.*" in routes["data"]["routes.json"]
        assert not any(r["controller"] for r in routes["metadata"]["ownerReferences"])
        beat = cluster.read(DEPLOYMENTS, "default", "queueworker-beat")
        assert [r["name"] for r in beat["metadata"]["ownerReferences"]] == ["emails"]
        assert cluster.read(DEPLOYMENTS, "team-b", "queueworker-beat") is not None
        await eventually(
            lambda: (
                beat_entries(redis_client, "default")
                == ["redbeat:qw/default/emails/digest", "redbeat:qw/default/emails/tick"]
            )
        )
        await eventually(lambda: beat_entries(redis_client, "team-b") == ["redbeat:qw/team-b/other/digest"])
        assert "replicas" not in cluster.read(DEPLOYMENTS, "default", "images-worker")["spec"]  # the HPA's
        assert cluster.read(DEPLOYMENTS, "default", "fixed-worker")["spec"]["replicas"] == 3
        assert status(cluster, "default", "fixed")["desiredReplicas"] == 3
        assert status(cluster, "default", "emails")["selector"] == (
            "app.kubernetes.io/component=worker,app.kubernetes.io/instance=emails,"
            "app.kubernetes.io/name=queueworker"
        )
        assert condition(cluster, "default", "fixed", "Autoscaling")["reason"] == "Disabled"
        assert condition(cluster, "default", "emails", "Ready")["reason"] == "WorkersNotReady"
        await eventually(lambda: events(cluster, "emails", "Created"))
        validate_all(
            {("Event", e["metadata"]["namespace"], e["metadata"]["name"]): e for e in cluster.live(EVENTS)}
        )

        # an update changes only what changed: the PDB is not written, the Deployment gets the new args
        pdb_versions = cluster.versions(PDBS, "default", "emails-worker")
        dep_versions = cluster.versions(DEPLOYMENTS, "default", "emails-worker")
        await patch(cluster, "default", "emails", {"spec": {"concurrency": 7}})
        await eventually(
            lambda: (
                "7"
                in cluster.read(DEPLOYMENTS, "default", "emails-worker")["spec"]["template"]["spec"][
                    "containers"
                ][0]["args"]
            )
        )
        await eventually(lambda: converged(cluster, names, settings))
        assert cluster.versions(PDBS, "default", "emails-worker") == pdb_versions
        assert cluster.versions(DEPLOYMENTS, "default", "emails-worker") == dep_versions + 1
        assert cluster.read(DEPLOYMENTS, "default", "emails-worker")["spec"]["replicas"] == 1
        await eventually(lambda: events(cluster, "emails", "Updated"))

        # a mode change swaps the autoscaler object
        await patch(cluster, "default", "reports", {"spec": {"autoscaling": {"mode": "hpa"}}})
        await eventually(
            lambda: (
                cluster.read(SCALEDOBJECTS, "default", "reports-worker") is None
                and cluster.read(HPAS, "default", "reports-worker") is not None
            )
        )
        await eventually(lambda: converged(cluster, names, settings))
        validate_all(managed_objects(cluster))

        # mode off: `kubectl scale qw/fixed --replicas=5` goes through /scale into spec.replicas
        response = await cluster.patch(
            "/apis/queueworker.dev/v1alpha1/namespaces/default/queueworkers/fixed/scale",
            json={"spec": {"replicas": 5}},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert response.status == 200 and (await response.json())["kind"] == "Scale"
        await eventually(
            lambda: cluster.read(DEPLOYMENTS, "default", "fixed-worker")["spec"]["replicas"] == 5
        )
        await eventually(lambda: status(cluster, "default", "fixed")["desiredReplicas"] == 5)

        # deletion: the finalizer is released, owned objects cascade, shared objects are re-rendered
        await delete(cluster, "default", "emails")
        await eventually(lambda: cluster.read(QW, "default", "emails") is None)
        await eventually(lambda: cluster.read(DEPLOYMENTS, "default", "queueworker-beat") is None)
        await eventually(
            lambda: (
                [
                    r["name"]
                    for r in cluster.read(CONFIGMAPS, "default", "queueworker-routes")["metadata"][
                        "ownerReferences"
                    ]
                ]
                == ["fixed", "images", "reports"]
            )
        )
        assert (
            "shop.email.*"
            not in cluster.read(CONFIGMAPS, "default", "queueworker-routes")["data"]["routes.json"]
        )
        assert cluster.read(DEPLOYMENTS, "default", "emails-worker") is None
        assert cluster.read(PDBS, "default", "emails-worker") is None
        assert cluster.read(DEPLOYMENTS, "team-b", "queueworker-beat") is not None
        await eventually(lambda: beat_entries(redis_client, "default") == [])
        assert beat_entries(redis_client, "team-b") == ["redbeat:qw/team-b/other/digest"]
        names.remove(("default", "emails"))
        await eventually(lambda: converged(cluster, names, settings))

        for name in ("reports", "images", "fixed"):
            await delete(cluster, "default", name)
        await eventually(lambda: not cluster.live(QW, "default"))
        await eventually(lambda: cluster.read(CONFIGMAPS, "default", "queueworker-routes") is None)
        assert set(expected_objects(cluster, settings)) == set(managed_objects(cluster))


async def test_removed_fields_are_removed_and_others_kept(cluster, start_operator, operator_env):
    settings = Settings.from_env(operator_env)
    async with start_operator():
        await create(
            cluster,
            manifest(
                "sel",
                nodeSelector={"pool": "batch"},
                tolerations=[{"key": "batch", "operator": "Exists", "effect": "NoSchedule"}],
            ),
        )
        await eventually(
            lambda: not differences(cluster, settings) and cluster.read(DEPLOYMENTS, "default", "sel-worker")
        )
        pod = cluster.read(DEPLOYMENTS, "default", "sel-worker")["spec"]["template"]["spec"]
        assert pod["nodeSelector"] == {"pool": "batch"} and pod["tolerations"]
        # another controller's annotation on the Deployment must survive our updates
        response = await cluster.patch(
            "/apis/apps/v1/namespaces/default/deployments/sel-worker",
            json={"metadata": {"annotations": {"example.com/owner": "ops"}}},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert response.status == 200
        await patch(cluster, "default", "sel", {"spec": {"nodeSelector": None, "tolerations": None}})
        await eventually(
            lambda: (
                "nodeSelector"
                not in cluster.read(DEPLOYMENTS, "default", "sel-worker")["spec"]["template"]["spec"]
            )
        )
        deployment = cluster.read(DEPLOYMENTS, "default", "sel-worker")
        assert "tolerations" not in deployment["spec"]["template"]["spec"]
        assert deployment["metadata"]["annotations"]["example.com/owner"] == "ops"
        await eventually(lambda: not differences(cluster, settings))
