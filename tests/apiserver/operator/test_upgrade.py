"""An upgrade from the version before server-side apply: its objects carry the `queueworker.dev/last-applied`
annotation and managedFields of `queueworker-operator` under Update operations. The first apply takes
them over without rolling a worker: the same spec and pod template (one ReplicaSet, the same
pod-template-hash) and replicas; the old annotation goes (the Deployment's generation counts that once,
as it counts every annotation change), and afterwards a field the spec drops is removed (the Apply
entry owns what the old version set)."""

from __future__ import annotations

import copy
import json

from queueworker import builders
from queueworker.api.spec import parse_manifest
from queueworker.settings import Settings
from queueworker_operator.fields import LEGACY_ANNOTATION

from tests.support.kubeapi import CONFIGMAPS, DEPLOYMENTS, PDBS, QW, REPLICASETS, Api, Resource
from tests.support.operator_harness import eventually
from tests.support.operator_helpers import create, differences, managers, manifest, patch

OLD_MANAGER = {"fieldManager": "queueworker-operator"}
RESOURCES: dict[str, Resource] = {
    "Deployment": DEPLOYMENTS,
    "PodDisruptionBudget": PDBS,
    "ConfigMap": CONFIGMAPS,
}


def apply_as_the_previous_version(kube: Api, obj: dict) -> None:
    """What kube.apply did before server-side apply, for an object it created: POST it with its
    last-applied annotation (the object without spec.replicas, compact JSON)."""
    record = copy.deepcopy(obj)
    record.get("spec", {}).pop("replicas", None)
    text = json.dumps(record, sort_keys=True, separators=(",", ":"))
    body = copy.deepcopy(obj)
    body["metadata"].setdefault("annotations", {})[LEGACY_ANNOTATION] = text
    resource = RESOURCES[obj["kind"]]
    kube.call("POST", resource.path(obj["metadata"]["namespace"]), body, params=OLD_MANAGER)


def replica_sets(kube: Api, ns: str) -> list[tuple[str, str]]:
    return sorted(
        (rs["metadata"]["name"], rs["metadata"]["labels"]["pod-template-hash"])
        for rs in kube.live(REPLICASETS, ns)
    )


async def test_upgrade_rolls_no_worker(kube, kube_server, ns, start_operator, operator_env):
    settings = Settings.from_env(operator_env)
    spec = {"mode": "builtin", "minReplicas": 2, "maxReplicas": 6}
    body = create(
        kube, manifest("legacy", ns, routes=["old.*"], nodeSelector={"pool": "a"}, autoscaling=spec)
    )
    qw = parse_manifest({k: body[k] for k in ("apiVersion", "kind", "metadata", "spec")})
    for obj in builders.render([qw], settings):
        apply_as_the_previous_version(kube, obj)
    # the previous autoscaler scaled through /scale with a merge patch under the same manager
    scale = {"spec": {"replicas": 3}}
    path = DEPLOYMENTS.path(ns, "legacy-worker", "scale")
    kube.call("PATCH", path, scale, content_type="application/merge-patch+json", params=OLD_MANAGER)

    with kube_server.controllers("deployment-controller", "replicaset-controller"):
        await eventually(lambda: len(replica_sets(kube, ns)) == 1, timeout=60)
        before = kube.read(DEPLOYMENTS, ns, "legacy-worker")
        sets = replica_sets(kube, ns)
        assert ("queueworker-operator", "Update", "") in managers(before)

        async with start_operator():

            def taken_over():
                deployment = kube.read(DEPLOYMENTS, ns, "legacy-worker")
                pdb = kube.read(PDBS, ns, "legacy-worker")
                routes = kube.read(CONFIGMAPS, ns, "queueworker-routes")
                for obj in (deployment, pdb, routes):
                    assert LEGACY_ANNOTATION not in (obj["metadata"].get("annotations") or {}), obj["kind"]
                    assert ("queueworker-operator", "Update", "") not in managers(obj), obj["kind"]
                    assert ("queueworker-operator", "Apply", "") in managers(obj), obj["kind"]
                return deployment

            after = await eventually(taken_over)
            # A Deployment's generation also counts changes of its annotations (they are copied to its
            # ReplicaSets): removing the old one counts once. The spec, so the pod template, is unchanged.
            assert after["metadata"]["generation"] == before["metadata"]["generation"] + 1
            assert after["spec"] == before["spec"]
            assert after["spec"]["replicas"] == 3, "replicas stay the autoscaler's"
            # the operator's apply does not own them (so never resets them); the previous version's /scale
            # record keeps them until the builtin autoscaler's next scale takes them over
            applied = [e for e in after["metadata"]["managedFields"] if e["operation"] == "Apply"]
            assert applied and not any("f:replicas" in e["fieldsV1"].get("f:spec", {}) for e in applied)
            await eventually(
                lambda: kube.read(DEPLOYMENTS, ns, "legacy-worker")["status"].get("observedGeneration")
            )
            assert replica_sets(kube, ns) == sets, "a worker rolled"
            assert not differences(kube, ns, settings)

            # the Apply entry owns what the previous version set: a field the spec drops goes
            patch(kube, ns, "legacy", {"spec": {"nodeSelector": None}})
            await eventually(
                lambda: (
                    "nodeSelector"
                    not in kube.read(DEPLOYMENTS, ns, "legacy-worker")["spec"]["template"]["spec"]
                )
            )
            assert kube.read(DEPLOYMENTS, ns, "legacy-worker")["spec"]["replicas"] == 3
            assert kube.read(QW, ns, "legacy")["metadata"]["generation"] == 2
