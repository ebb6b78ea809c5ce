"""Reporting: a QueueWorker's status and Events from what runs (its worker Deployment, the outcome of an
apply, an invalid spec). Writes only status and Events, never a child."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from queueworker.api.spec import API_VERSION, QueueWorker, SpecError
from queueworker.builders.worker import desired_replicas

from queueworker_operator import metrics
from queueworker_operator.cluster import Cluster, DeploymentSummary
from queueworker_operator.kube import ApplyResult, KubeError
from queueworker_operator.specs import Specs
from queueworker_operator.status import Cond

logger = logging.getLogger(__name__)

#: The modes whose autoscaler is an object of its own (they own replicas; the operator reports them).
SCALED_BY_OBJECT = ("keda", "hpa")


def involved(body: Mapping[str, Any]) -> dict[str, Any]:
    meta = body.get("metadata", {})
    return {
        "apiVersion": API_VERSION,
        "kind": "QueueWorker",
        "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace"), "uid": meta.get("uid")},
    }


def invalid_message(exc: SpecError) -> str:
    return "invalid spec: " + "; ".join(f"{e.path}: {e.message}" for e in exc.errors)


def autoscaling_condition(mode: str, spec_replicas: int) -> Cond:
    if mode == "builtin":
        return Cond(True, "Builtin", "the operator scales the workers on queue wait time")
    if mode == "keda":
        return Cond(True, "KEDA", "a KEDA ScaledObject scales the workers")
    if mode == "hpa":
        return Cond(True, "HPA", "a HorizontalPodAutoscaler scales the workers on the exported metrics")
    return Cond(False, "Disabled", f"autoscaling is off: spec.replicas={spec_replicas}")


def summarize(deployment: Mapping[str, Any]) -> DeploymentSummary:
    """What status and the autoscaler read of a worker Deployment (spec and status)."""
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    labels = (spec.get("selector") or {}).get("matchLabels") or {}
    return DeploymentSummary(
        name=deployment["metadata"]["name"],
        replicas=spec.get("replicas"),
        ready=int(status.get("readyReplicas") or 0),
        available=int(status.get("availableReplicas") or 0),
        selector=",".join(f"{k}={v}" for k, v in sorted(labels.items())),
        generation=int((deployment.get("metadata") or {}).get("generation") or 0),
    )


def readiness(summary: DeploymentSummary) -> Cond:
    want = summary.replicas or 0
    if want == 0:
        return Cond(True, "ScaledToZero", "no worker replicas are wanted right now")
    if summary.ready >= want:
        return Cond(True, "WorkersReady", f"{summary.ready}/{want} worker replicas ready")
    return Cond(False, "WorkersNotReady", f"{summary.ready}/{want} worker replicas ready")


async def invalid(cluster: Cluster, body: Mapping[str, Any], exc: SpecError) -> None:
    meta = body.get("metadata", {})
    message = invalid_message(exc)
    changed = await cluster.status.update(
        meta["namespace"],
        meta["name"],
        generation=meta.get("generation"),
        fields={"observedGeneration": meta.get("generation")},
        conditions={"Ready": Cond(False, "InvalidSpec", message)},
    )
    if changed:
        await cluster.kube.event(involved(body), "Warning", "InvalidSpec", message)


async def failed(cluster: Cluster, body: Mapping[str, Any], reason: str, message: str) -> None:
    """Ready=False with `reason` and a Warning Event (NameConflict, ApplyFailed)."""
    meta = body["metadata"]
    await cluster.status.update(
        meta["namespace"], meta["name"], conditions={"Ready": Cond(False, reason, message)}
    )
    await cluster.kube.event(involved(body), "Warning", reason, message)


async def applied(
    cluster: Cluster, body: Mapping[str, Any], qw: QueueWorker, results: Sequence[ApplyResult], quiet: bool
) -> None:
    """Status after the worker objects were applied, and an Event naming what changed."""
    meta = body["metadata"]
    namespace, name, mode = qw.namespace, qw.name, qw.spec.autoscaling.mode
    deployment = next(r.object for r in results if r.object.get("kind") == "Deployment")
    summary = cluster.saw_deployment((namespace, name), summarize(deployment))
    fields: dict[str, Any] = {
        "observedGeneration": meta.get("generation"),
        "selector": summary.selector,
        "replicas": int((deployment.get("status") or {}).get("replicas") or 0),
        "readyReplicas": summary.ready,
    }
    if mode == "off":
        fields["desiredReplicas"] = qw.spec.replicas
    elif mode == "builtin" and "desiredReplicas" not in cluster.status.get(namespace, name):
        initial = summary.replicas if summary.replicas is not None else desired_replicas(qw)
        fields["desiredReplicas"] = initial
    elif mode in SCALED_BY_OBJECT:
        fields["desiredReplicas"] = summary.replicas
    await cluster.status.update(
        namespace,
        name,
        generation=meta.get("generation"),
        fields=fields,
        conditions={
            "Ready": readiness(summary),
            "Autoscaling": autoscaling_condition(mode, qw.spec.replicas),
        },
    )
    changed = [
        f"{r.object.get('kind')}/{r.object['metadata']['name']}" for r in results if r.outcome != "unchanged"
    ]
    if changed:
        created = all(r.outcome == "created" for r in results)
        reason = "Created" if created else ("Corrected" if quiet else "Updated")
        await cluster.kube.event(involved(body), "Normal", reason, f"{reason.lower()} {', '.join(changed)}")
        metrics.REPLICAS_DESIRED.labels(namespace, name).set(fields.get("desiredReplicas") or 0)


async def deployment_changed(
    specs: Specs, cluster: Cluster, deployment: Mapping[str, Any], deleted: bool
) -> None:
    """A worker Deployment changed: report replicas and readiness on its QueueWorker."""
    refs = [
        r
        for r in deployment.get("metadata", {}).get("ownerReferences") or []
        if r.get("kind") == "QueueWorker" and r.get("controller")
    ]
    if not refs:
        return
    namespace, name = deployment["metadata"]["namespace"], refs[0]["name"]
    if deleted:
        cluster.deployments.pop((namespace, name), None)
        return
    summary = summarize(deployment)
    if cluster.saw_deployment((namespace, name), summary) is not summary:
        return  # a late event, older than a scale the operator already made: keep what it knows
    metrics.REPLICAS_READY.labels(namespace, name).set(summary.ready)
    fields: dict[str, Any] = {
        "replicas": int((deployment.get("status") or {}).get("replicas") or 0),
        "readyReplicas": summary.ready,
        "selector": summary.selector,
    }
    conditions = {}
    if not specs.is_invalid(namespace, name):
        conditions["Ready"] = readiness(summary)
    if "desiredReplicas" in cluster.status.get(namespace, name) or summary.replicas is not None:
        qw = specs.last_good(namespace, name, refs[0].get("uid"))
        if qw is not None and qw.spec.autoscaling.mode in SCALED_BY_OBJECT:
            fields["desiredReplicas"] = summary.replicas
    try:
        await cluster.status.update(namespace, name, fields=fields, conditions=conditions)
    except KubeError as exc:
        logger.warning("status of %s/%s not updated: %s", namespace, name, exc)
