"""Helpers for operator tests: talk to the emulator over HTTP as kubectl would, and compute what the
cluster must hold from the builders (the same functions `qw render` uses)."""

from __future__ import annotations

import copy
from typing import Any

import kmock
from queueworker import builders
from queueworker.api.spec import SpecError, parse_manifest
from queueworker.settings import Settings
from queueworker_operator.kube import LAST_APPLIED, contains

from hack.kube_emulator import CONFIGMAPS, DEPLOYMENTS, EVENTS, HPAS, PDBS, QW, SCALEDOBJECTS, Emulator
from tests.support.validate import validate_object

MANAGED = (DEPLOYMENTS, PDBS, CONFIGMAPS, HPAS, SCALEDOBJECTS)
RESOURCES = {
    "Deployment": DEPLOYMENTS,
    "PodDisruptionBudget": PDBS,
    "ConfigMap": CONFIGMAPS,
    "HorizontalPodAutoscaler": HPAS,
    "ScaledObject": SCALEDOBJECTS,
}


def manifest(name: str, namespace: str = "default", **spec: Any) -> dict[str, Any]:
    body = {"app": "tasks:app", "queues": [name.replace("-", "_")], **spec}
    return {
        "apiVersion": "queueworker.dev/v1alpha1",
        "kind": "QueueWorker",
        "metadata": {"name": name, "namespace": namespace},
        "spec": body,
    }


def qw_path(namespace: str, name: str | None = None) -> str:
    path = f"/apis/queueworker.dev/v1alpha1/namespaces/{namespace}/queueworkers"
    return f"{path}/{name}" if name else path


async def create(cluster: Emulator, obj: dict[str, Any]) -> dict[str, Any]:
    response = await cluster.post(qw_path(obj["metadata"]["namespace"]), json=obj)
    assert response.status < 300, await response.text()
    return dict(await response.json())


async def patch(cluster: Emulator, namespace: str, name: str, body: dict[str, Any]) -> None:
    response = await cluster.patch(
        qw_path(namespace, name), json=body, headers={"Content-Type": "application/merge-patch+json"}
    )
    assert response.status < 300, await response.text()


async def delete(cluster: Emulator, namespace: str, name: str) -> None:
    response = await cluster.delete(qw_path(namespace, name))
    assert response.status < 300, await response.text()


def status(cluster: Emulator, namespace: str, name: str) -> dict[str, Any]:
    return dict((cluster.read(QW, namespace, name) or {}).get("status") or {})


def condition(cluster: Emulator, namespace: str, name: str, type_: str) -> dict[str, Any]:
    for cond in status(cluster, namespace, name).get("conditions") or []:
        if cond["type"] == type_:
            return dict(cond)
    return {}


def events(cluster: Emulator, name: str, reason: str | None = None) -> list[dict[str, Any]]:
    return [
        e
        for e in cluster.live(EVENTS)
        if e["involvedObject"]["name"] == name and (reason is None or e["reason"] == reason)
    ]


def managed_objects(
    cluster: Emulator, namespace: str | None = None
) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Every object the operator manages in the cluster, by (kind, namespace, name)."""
    found = {}
    for resource in MANAGED:
        for obj in cluster.live(resource, namespace):
            if (obj["metadata"].get("labels") or {}).get(
                "app.kubernetes.io/managed-by"
            ) == "queueworker-operator":
                found[(obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"])] = obj
    return found


def expected_objects(
    cluster: Emulator, settings: Settings | None = None
) -> dict[tuple[str, str, str], dict[str, Any]]:
    """What `qw render` gives for the QueueWorkers now in the cluster (with their uids)."""
    settings = settings or Settings()
    qws = []
    for body in cluster.live(QW):
        if body["metadata"].get("deletionTimestamp"):
            continue
        meta = {k: body["metadata"][k] for k in ("name", "namespace", "uid", "generation")}
        try:
            qws.append(
                parse_manifest({**{k: body[k] for k in ("apiVersion", "kind", "spec")}, "metadata": meta})
            )
        except SpecError:
            continue  # an invalid QueueWorker gets nothing
    return {
        (o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]): o
        for o in builders.render(qws, settings)
    }


def differences(cluster: Emulator, settings: Settings | None = None) -> list[str]:
    """Empty when the cluster holds exactly the rendered objects (live objects may have server fields)."""
    expected, live = expected_objects(cluster, settings), managed_objects(cluster)
    problems = [f"missing {k}" for k in expected if k not in live]
    problems += [f"unexpected {k}" for k in live if k not in expected]
    for key, want in expected.items():
        got = live.get(key)
        if got is None:
            continue
        if (
            key[0] == "Deployment"
            and "replicas" in want.get("spec", {})
            and "replicas" in got.get("spec", {})
        ):
            want = copy.deepcopy(want)
            want["spec"]["replicas"] = got["spec"]["replicas"]  # the autoscaler owns it after creation
        if not contains(got, want):
            problems.append(f"differs {key}")
    return problems


def validate_all(objects: dict[tuple[str, str, str], dict[str, Any]]) -> None:
    """Every object valid for Kubernetes 1.28 and 1.34 (strict), as an API server would accept it."""
    for obj in objects.values():
        clean = copy.deepcopy(obj)
        clean.pop("status", None)
        for version in ("1.28.0", "1.34.0"):
            validate_object(clean, version)


def has_last_applied(obj: dict[str, Any]) -> bool:
    return LAST_APPLIED in (obj["metadata"].get("annotations") or {})


__all__ = ["QW", "kmock"]
