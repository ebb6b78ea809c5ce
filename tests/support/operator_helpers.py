"""Helpers for operator tests: talk to the API server as kubectl would, and compute what the cluster must
hold from the builders (the same functions `qw render` uses)."""

from __future__ import annotations

import copy
from typing import Any

from queueworker import builders
from queueworker.api.spec import SpecError
from queueworker.settings import Settings
from queueworker_operator.fields import LEGACY_ANNOTATION, contains
from queueworker_operator.specs import parse

from tests.support.kubeapi import CONFIGMAPS, DEPLOYMENTS, EVENTS, HPAS, PDBS, QW, SCALEDOBJECTS, Api
from tests.support.validate import validate_object

MANAGED = (DEPLOYMENTS, PDBS, CONFIGMAPS, HPAS, SCALEDOBJECTS)
MANAGED_BY = {"app.kubernetes.io/managed-by": "queueworker-operator"}


def manifest(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    body = {"app": "tasks:app", "queues": [name.replace("-", "_")], **spec}
    return {
        "apiVersion": "queueworker.dev/v1alpha1",
        "kind": "QueueWorker",
        "metadata": {"name": name, "namespace": namespace},
        "spec": body,
    }


def create(kube: Api, obj: dict[str, Any]) -> dict[str, Any]:
    return kube.create(QW, obj)


def patch(kube: Api, namespace: str, name: str, body: dict[str, Any]) -> None:
    kube.patch(QW, namespace, name, body)


def delete(kube: Api, namespace: str, name: str) -> None:
    kube.delete(QW, namespace, name)


def status(kube: Api, namespace: str, name: str) -> dict[str, Any]:
    return dict((kube.read(QW, namespace, name) or {}).get("status") or {})


def condition(kube: Api, namespace: str, name: str, type_: str) -> dict[str, Any]:
    for cond in status(kube, namespace, name).get("conditions") or []:
        if cond["type"] == type_:
            return dict(cond)
    return {}


def events(kube: Api, namespace: str, name: str, reason: str | None = None) -> list[dict[str, Any]]:
    return [
        e
        for e in kube.live(EVENTS, namespace)
        if e["involvedObject"]["name"] == name and (reason is None or e["reason"] == reason)
    ]


def managed_objects(kube: Api, namespace: str) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Every object the operator manages in the namespace, by (kind, namespace, name)."""
    found = {}
    for resource in MANAGED:
        for obj in kube.live(resource, namespace, labels=MANAGED_BY):
            if obj["metadata"].get("deletionTimestamp"):
                continue
            obj.setdefault("apiVersion", f"{resource.group}/{resource.version}".lstrip("/"))
            obj.setdefault("kind", _KINDS[resource.plural])
            found[(obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"])] = obj
    return found


_KINDS = {
    "deployments": "Deployment",
    "poddisruptionbudgets": "PodDisruptionBudget",
    "configmaps": "ConfigMap",
    "horizontalpodautoscalers": "HorizontalPodAutoscaler",
    "scaledobjects": "ScaledObject",
}


def expected_objects(
    kube: Api, namespace: str, settings: Settings | None = None
) -> dict[tuple[str, str, str], dict[str, Any]]:
    """What `qw render` gives for the QueueWorkers now in the namespace (with their uids)."""
    settings = settings or Settings()
    qws = []
    for body in kube.live(QW, namespace):
        if body["metadata"].get("deletionTimestamp"):
            continue
        try:
            qws.append(parse(body))  # as the operator parses: the model, then what builders cannot build
        except SpecError:
            continue  # an invalid QueueWorker gets nothing
    return {
        (o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]): o
        for o in builders.render(qws, settings)
    }


def differences(kube: Api, namespace: str, settings: Settings | None = None) -> list[str]:
    """Empty when the namespace holds exactly the rendered objects (live objects have server fields)."""
    expected, live = expected_objects(kube, namespace, settings), managed_objects(kube, namespace)
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
        if LEGACY_ANNOTATION in (got["metadata"].get("annotations") or {}):
            problems.append(f"{key} carries {LEGACY_ANNOTATION}")
    return problems


def validate_all(objects: dict[tuple[str, str, str], dict[str, Any]]) -> None:
    """Every object valid for Kubernetes 1.28 and 1.34 (strict), as an API server would accept it."""
    for obj in objects.values():
        clean = copy.deepcopy(obj)
        clean.pop("status", None)
        clean["metadata"].pop("managedFields", None)
        for version in ("1.28.0", "1.34.0"):
            validate_object(clean, version)


def managers(obj: dict[str, Any]) -> set[tuple[str, str, str]]:
    """(manager, operation, subresource) of every managedFields entry."""
    return {
        (e["manager"], e["operation"], e.get("subresource", ""))
        for e in obj["metadata"].get("managedFields") or []
    }
