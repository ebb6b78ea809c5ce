"""Reconciliation: a QueueWorker's own objects, its namespace's shared objects, and status from what runs.

`reconcile` applies exactly what `builders.queueworker_objects` returns (only differences are patched),
removes an autoscaler object left over from another mode, and reports status and Events. An invalid
spec touches nothing: Ready=False/InvalidSpec, a Warning Event, then kopf.PermanentError.
`sync_namespace` applies the routes ConfigMap and beat Deployment built from every QueueWorker of the
namespace, deletes them when nothing needs them, and syncs the beat entries under `qw/{namespace}/`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import aiohttp
import kopf
from queueworker import builders
from queueworker.api.spec import API_VERSION, PLURAL, SpecError
from queueworker.beat import schedules
from queueworker.builders.labels import MANAGED_BY, MANAGED_BY_KEY
from queueworker.builders.worker import desired_replicas
from queueworker.contract import redact

from queueworker_operator import metrics
from queueworker_operator.kube import ApplyResult, KubeError, NotOurs
from queueworker_operator.state import LAST_VALID, Observed, OperatorState, spec_text
from queueworker_operator.status import Cond

logger = logging.getLogger(__name__)

#: Autoscaler kinds per mode; the others are removed when the mode changes.
SCALERS = {
    "keda": ("keda.sh/v1alpha1", "scaledobjects"),
    "hpa": ("autoscaling/v2", "horizontalpodautoscalers"),
}
RETRY_DELAY = 10.0
CONFLICT_DELAY = 30.0


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


def observe(deployment: Mapping[str, Any]) -> Observed:
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    labels = (spec.get("selector") or {}).get("matchLabels") or {}
    return Observed(
        name=deployment["metadata"]["name"],
        replicas=spec.get("replicas"),
        ready=int(status.get("readyReplicas") or 0),
        available=int(status.get("availableReplicas") or 0),
        selector=",".join(f"{k}={v}" for k, v in sorted(labels.items())),
        generation=int((deployment.get("metadata") or {}).get("generation") or 0),
    )


def readiness(observed: Observed) -> Cond:
    want = observed.replicas or 0
    if want == 0:
        return Cond(True, "ScaledToZero", "no worker replicas are wanted right now")
    if observed.ready >= want:
        return Cond(True, "WorkersReady", f"{observed.ready}/{want} worker replicas ready")
    return Cond(False, "WorkersNotReady", f"{observed.ready}/{want} worker replicas ready")


async def report_invalid(rt: OperatorState, body: Mapping[str, Any], exc: SpecError) -> None:
    meta = body.get("metadata", {})
    message = invalid_message(exc)
    changed = await rt.status.update(
        meta["namespace"],
        meta["name"],
        generation=meta.get("generation"),
        fields={"observedGeneration": meta.get("generation")},
        conditions={"Ready": Cond(False, "InvalidSpec", message)},
    )
    if changed:
        await rt.kube.event(involved(body), "Warning", "InvalidSpec", message)


async def reconcile(rt: OperatorState, body: Mapping[str, Any], *, quiet: bool = False) -> None:
    """Make the QueueWorker's objects match its spec. `quiet` (the drift timer): no error for invalid
    specs, which were already reported."""
    meta = body.get("metadata", {})
    namespace, name, uid = meta["namespace"], meta["name"], meta.get("uid")
    rt.status.seed(namespace, name, uid, body.get("status"))
    try:
        qw = rt.catalog.parse(body)
    except SpecError as exc:
        await report_invalid(rt, body, exc)
        metrics.reconciled("invalid")
        if quiet:
            return
        raise kopf.PermanentError(invalid_message(exc)) from None
    mode = qw.spec.autoscaling.mode
    try:
        results: list[ApplyResult] = []
        for obj in builders.queueworker_objects(qw, rt.settings):
            keep = obj["kind"] == "Deployment" and mode != "off"
            results.append(await rt.kube.apply(obj, keep_replicas=keep))
        for other, (api_version, plural) in SCALERS.items():
            if other != mode:
                await rt.kube.delete(api_version, plural, namespace, builders.worker_name(qw))
    except NotOurs as exc:  # e.g. children of a deleted namesake not yet collected: retry later
        metrics.reconciled("error")
        await rt.status.update(namespace, name, conditions={"Ready": Cond(False, "NameConflict", str(exc))})
        await rt.kube.event(involved(body), "Warning", "NameConflict", str(exc))
        if quiet:
            return
        raise kopf.TemporaryError(str(exc), delay=CONFLICT_DELAY) from None
    except (KubeError, aiohttp.ClientError, TimeoutError) as exc:
        metrics.reconciled("error")
        message = redact(f"applying the worker objects failed: {exc}", rt.settings.redis_url)
        await rt.status.update(namespace, name, conditions={"Ready": Cond(False, "ApplyFailed", message)})
        await rt.kube.event(involved(body), "Warning", "ApplyFailed", message)
        if isinstance(exc, KubeError) and not exc.retryable:
            if quiet:
                return
            raise kopf.PermanentError(message) from None
        raise kopf.TemporaryError(message, delay=RETRY_DELAY) from None
    metrics.reconciled("ok")
    recorded = spec_text(body.get("spec"))
    if (meta.get("annotations") or {}).get(LAST_VALID) != recorded:
        await rt.kube.annotate(API_VERSION, PLURAL, namespace, name, {LAST_VALID: recorded})
    rt.request_namespace(namespace)

    deployment = next(r.object for r in results if r.object.get("kind") == "Deployment")
    observed = rt.saw_deployment((namespace, name), observe(deployment))
    fields: dict[str, Any] = {
        "observedGeneration": meta.get("generation"),
        "selector": observed.selector,
        "replicas": int((deployment.get("status") or {}).get("replicas") or 0),
        "readyReplicas": observed.ready,
    }
    if mode == "off":
        fields["desiredReplicas"] = qw.spec.replicas
    elif mode == "builtin" and "desiredReplicas" not in rt.status.get(namespace, name):
        initial = observed.replicas if observed.replicas is not None else desired_replicas(qw)
        fields["desiredReplicas"] = initial
    elif mode in SCALERS:
        fields["desiredReplicas"] = observed.replicas
    await rt.status.update(
        namespace,
        name,
        generation=meta.get("generation"),
        fields=fields,
        conditions={
            "Ready": readiness(observed),
            "Autoscaling": autoscaling_condition(mode, qw.spec.replicas),
        },
    )
    changed = [
        f"{r.object.get('kind')}/{r.object['metadata']['name']}" for r in results if r.outcome != "unchanged"
    ]
    if changed:
        created = all(r.outcome == "created" for r in results)
        reason = "Created" if created else ("Corrected" if quiet else "Updated")
        await rt.kube.event(involved(body), "Normal", reason, f"{reason.lower()} {', '.join(changed)}")
        metrics.REPLICAS_DESIRED.labels(namespace, name).set(fields.get("desiredReplicas") or 0)


async def deployment_changed(rt: OperatorState, deployment: Mapping[str, Any], deleted: bool) -> None:
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
        rt.deployments.pop((namespace, name), None)
        return
    observed = observe(deployment)
    if rt.saw_deployment((namespace, name), observed) is not observed:
        return  # a late event, older than a scale the operator already made: keep what it knows
    metrics.REPLICAS_READY.labels(namespace, name).set(observed.ready)
    fields: dict[str, Any] = {
        "replicas": int((deployment.get("status") or {}).get("replicas") or 0),
        "readyReplicas": observed.ready,
        "selector": observed.selector,
    }
    conditions = {}
    if not rt.catalog.is_invalid(namespace, name):
        conditions["Ready"] = readiness(observed)
    if "desiredReplicas" in rt.status.get(namespace, name) or observed.replicas is not None:
        qw = rt.catalog.last_good(namespace, name, refs[0].get("uid"))
        if qw is not None and qw.spec.autoscaling.mode in SCALERS:
            fields["desiredReplicas"] = observed.replicas
    try:
        await rt.status.update(namespace, name, fields=fields, conditions=conditions)
    except KubeError as exc:
        logger.warning("status of %s/%s not updated: %s", namespace, name, exc)


async def sync_namespace(rt: OperatorState, namespace: str) -> None:
    """Apply the namespace's shared objects from all its QueueWorkers; delete what is not needed."""
    qws = rt.catalog.namespace(namespace)
    objects = builders.namespace_objects(qws, rt.settings) if qws else []
    wanted = {(o["kind"], o["metadata"]["name"]) for o in objects}
    for obj in objects:
        await rt.kube.apply(obj)
    for api_version, plural, kind, name in (
        ("v1", "configmaps", "ConfigMap", rt.settings.routes_configmap),
        ("apps/v1", "deployments", "Deployment", rt.settings.beat_name),
    ):
        if (kind, name) in wanted:
            continue
        live = await rt.kube.get(api_version, plural, namespace, name)
        if live is not None and (live["metadata"].get("labels") or {}).get(MANAGED_BY_KEY) == MANAGED_BY:
            await rt.kube.delete(api_version, plural, namespace, name)
            logger.info("deleted %s %s/%s: no QueueWorker needs it", kind, namespace, name)
    entries = [entry for qw in qws for entry in schedules.desired_entries(qw)]
    await asyncio.to_thread(
        schedules.sync_schedules, rt.settings.redis_url, schedules.owner_prefix(namespace), entries
    )


async def correct_drift(rt: OperatorState) -> None:
    """The drift timer: every drift_interval, re-apply every QueueWorker's objects and every namespace's
    shared objects (only differences are patched, so a cluster without drift sees no writes)."""
    limit = asyncio.Semaphore(8)

    async def one(body: Mapping[str, Any]) -> None:
        async with limit:
            try:
                await reconcile(rt, body, quiet=True)
            except kopf.TemporaryError as exc:
                logger.warning(
                    "drift correction of %s/%s failed: %s",
                    body["metadata"].get("namespace"),
                    body["metadata"].get("name"),
                    exc,
                )

    await rt.ready.wait()
    while True:
        await asyncio.sleep(rt.settings.drift_interval)
        for namespace in rt.catalog.namespaces():
            bodies = [
                b
                for b in list(rt.catalog.index.get(namespace, ()))
                if not b.get("metadata", {}).get("deletionTimestamp")
            ]
            await asyncio.gather(*(one(b) for b in bodies))
            rt.request_namespace(namespace)
