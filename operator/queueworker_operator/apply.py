"""Applying: a QueueWorker's own objects and its namespace's shared objects, by server-side apply.

`reconcile` applies exactly what `builders.queueworker_objects` returns, removes an autoscaler object
left over from another mode, then hands over to report.py for status and Events. An invalid spec touches
nothing: Ready=False/InvalidSpec, a Warning Event, then kopf.PermanentError. `sync_namespace` applies
the routes ConfigMap and beat Deployment built from every QueueWorker of the namespace, deletes them
when nothing needs them, and syncs the beat entries under `qw/{namespace}/`.

When an autoscaler owns a worker Deployment's replicas (every mode but off), the operator applies it
without spec.replicas. The field is handed over first: the builtin autoscaler's manager applies the
current value through /scale (so both own it), then the operator's apply drops it; the server keeps a
value another manager still owns. Objects written by versions before server-side apply get their
managedFields upgraded once (fields.upgraded_entries) and are applied again, which removes the old
`queueworker.dev/last-applied` annotation and leaves the pod template, and so the pods, as they were.

Drift: every drift_interval each child is compared with the cluster's cache (no request) and only a
QueueWorker with a child that differs is applied again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import aiohttp
import kopf
from queueworker import builders
from queueworker.api.spec import API_VERSION, PLURAL, QueueWorker, SpecError
from queueworker.beat import schedules
from queueworker.contract import redact
from queueworker.settings import Settings

from queueworker_operator import fields, metrics, report
from queueworker_operator.cluster import Cluster
from queueworker_operator.kube import ApplyResult, KubeError, NotOurs, check_ours
from queueworker_operator.specs import LAST_VALID, Specs, spec_text

logger = logging.getLogger(__name__)

#: Autoscaler kinds per mode; the others are removed when the mode changes.
SCALERS = {
    "keda": ("keda.sh/v1alpha1", "scaledobjects", "ScaledObject"),
    "hpa": ("autoscaling/v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler"),
}
RETRY_DELAY = 10.0
CONFLICT_DELAY = 30.0


def scaled(obj: Mapping[str, Any], autoscaled: bool) -> bool:
    """Whether an autoscaler owns this object's replicas (a worker Deployment in any mode but off)."""
    return autoscaled and obj.get("kind") == "Deployment"


async def claim_replicas(cluster: Cluster, live: Mapping[str, Any]) -> None:
    """Give the autoscaler's manager a share of spec.replicas while the operator still owns it."""
    replicas = (live.get("spec") or {}).get("replicas")
    if replicas is None or not fields.needs_replicas_claim(live):
        return
    meta = live["metadata"]
    await cluster.kube.scale("apps/v1", "deployments", meta["namespace"], meta["name"], int(replicas))


async def apply_child(cluster: Cluster, obj: Mapping[str, Any], autoscaled: bool = False) -> ApplyResult:
    """Apply one object: never one that belongs to something else, replicas left to their autoscaler,
    a pre-server-side-apply object upgraded."""
    live = await cluster.live(obj)
    check_ours(obj, live)
    desired = dict(obj)
    if scaled(obj, autoscaled) and live is not None:
        await claim_replicas(cluster, live)
        desired = fields.without_replicas(obj)
    result = await cluster.kube.apply(desired, live)
    if scaled(obj, autoscaled) and fields.needs_replicas_claim(result.object):
        # created with its first replicas: hand them over now, so that no later apply changes anything
        await claim_replicas(cluster, result.object)
        again = await cluster.kube.apply(fields.without_replicas(obj), result.object)
        result = ApplyResult(result.outcome, again.object)
    if fields.legacy(result.object):
        upgraded = fields.upgraded_entries(result.object)
        await cluster.kube.replace_managed_fields(result.object, upgraded)
        again = await cluster.kube.apply(desired, result.object)
        result = ApplyResult("created" if live is None else "patched", again.object)
        logger.info("%s %s/%s: taken over by server-side apply", obj["kind"], *_where(obj))
    return result


def _where(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj["metadata"]
    return str(meta.get("namespace")), str(meta["name"])


async def drifted(cluster: Cluster, obj: Mapping[str, Any], autoscaled: bool = False) -> bool:
    """Whether the live object differs from `obj` (read from the cache; a kind the operator does not
    watch, such as KEDA's ScaledObject, is read from the API)."""
    live = cluster.cached(obj) if obj["kind"] in cluster.children else await cluster.live(obj)
    if live is None:
        return True
    if scaled(obj, autoscaled):
        if fields.needs_replicas_claim(live):
            return True
        obj = fields.without_replicas(obj)
    return fields.legacy(live) or not fields.contains(live, obj)


async def unchanged(cluster: Cluster, settings: Settings, body: Mapping[str, Any], qw: QueueWorker) -> bool:
    """Nothing to write: the status is of this generation and reports no failed apply, its spec is
    recorded as the last valid one, and the cache holds every child as desired (then the other modes'
    autoscalers were removed when this generation was applied)."""
    meta, status = body.get("metadata", {}), body.get("status") or {}
    if status.get("observedGeneration") != meta.get("generation"):
        return False
    failures = ("ApplyFailed", "NameConflict")
    if any(c.get("reason") in failures for c in status.get("conditions") or [] if isinstance(c, dict)):
        return False
    if (meta.get("annotations") or {}).get(LAST_VALID) != spec_text(body.get("spec")):
        return False
    autoscaled = qw.spec.autoscaling.mode != "off"
    for obj in builders.queueworker_objects(qw, settings):
        if obj["kind"] not in cluster.children or await drifted(cluster, obj, autoscaled):
            return False
    return True


async def remove_other_scalers(cluster: Cluster, qw: QueueWorker) -> None:
    """Delete the autoscaler objects of the modes the QueueWorker is not in (once per mode and run; an
    HPA only when the cache holds one)."""
    key = (qw.namespace, qw.name, qw.spec.autoscaling.mode)
    if key in cluster.scalers_removed:
        return
    name = builders.worker_name(qw)
    for other, (api_version, plural, kind) in SCALERS.items():
        if other == key[2]:
            continue
        probe = {"kind": kind, "metadata": {"namespace": qw.namespace, "name": name}}
        if kind in cluster.children and cluster.cached(probe) is None:
            continue
        await cluster.kube.delete(api_version, plural, qw.namespace, name)
    cluster.scalers_removed = {k for k in cluster.scalers_removed if k[:2] != key[:2]} | {key}


async def reconcile(
    specs: Specs,
    cluster: Cluster,
    settings: Settings,
    body: Mapping[str, Any],
    *,
    quiet: bool = False,
    patch: kopf.Patch | None = None,
) -> None:
    """Make the QueueWorker's objects match its spec. `quiet` (the drift timer): no error for invalid
    specs, which were already reported. `patch`: kopf's patch of this body, which then carries the
    last-valid-spec annotation with kopf's own (one write fewer). At most Cluster.applying at once."""
    async with cluster.applying:
        await _reconcile(specs, cluster, settings, body, quiet=quiet, patch=patch)


async def _reconcile(
    specs: Specs,
    cluster: Cluster,
    settings: Settings,
    body: Mapping[str, Any],
    *,
    quiet: bool,
    patch: kopf.Patch | None,
) -> None:
    meta = body.get("metadata", {})
    namespace, name = meta["namespace"], meta["name"]
    cluster.status.seed(namespace, name, meta.get("uid"), body.get("status"))
    try:
        qw = specs.parse(body)
    except SpecError as exc:
        await report.invalid(cluster, body, exc)
        metrics.reconciled("invalid")
        if quiet:
            return
        raise kopf.PermanentError(report.invalid_message(exc)) from None
    if await unchanged(cluster, settings, body, qw):  # a resumed operator's common case: write nothing
        metrics.reconciled("ok")
        cluster.request_namespace(namespace, forced=False)
        return
    autoscaled = qw.spec.autoscaling.mode != "off"
    try:
        results = [
            await apply_child(cluster, obj, autoscaled) for obj in builders.queueworker_objects(qw, settings)
        ]
        await remove_other_scalers(cluster, qw)
    except NotOurs as exc:  # e.g. children of a deleted namesake not yet collected: retry later
        metrics.reconciled("error")
        await report.failed(cluster, body, "NameConflict", str(exc))
        if quiet:
            return
        raise kopf.TemporaryError(str(exc), delay=CONFLICT_DELAY) from None
    except (KubeError, aiohttp.ClientError, TimeoutError) as exc:
        metrics.reconciled("error")
        message = redact(f"applying the worker objects failed: {exc}", settings.redis_url)
        await report.failed(cluster, body, "ApplyFailed", message)
        if isinstance(exc, KubeError) and not exc.retryable:
            if quiet:
                return
            raise kopf.PermanentError(message) from None
        raise kopf.TemporaryError(message, delay=RETRY_DELAY) from None
    metrics.reconciled("ok")
    recorded = spec_text(body.get("spec"))
    if (meta.get("annotations") or {}).get(LAST_VALID) != recorded:
        if patch is not None:
            patch.meta.annotations[LAST_VALID] = recorded
        else:
            await cluster.kube.annotate(API_VERSION, PLURAL, namespace, name, {LAST_VALID: recorded})
    cluster.request_namespace(namespace)
    await report.applied(cluster, body, qw, results, quiet)


async def sync_namespace(
    specs: Specs, cluster: Cluster, settings: Settings, namespace: str, forced: bool = True
) -> None:
    """Apply the namespace's shared objects from all its QueueWorkers (unless `forced`, only those that
    drifted); delete what is not needed; sync the beat entries."""
    qws = specs.namespace(namespace)
    objects = builders.namespace_objects(qws, settings) if qws else []
    wanted = {(o["kind"], o["metadata"]["name"]) for o in objects}
    for obj in objects:
        if forced or await drifted(cluster, obj):
            await apply_child(cluster, obj)
    for api_version, plural, kind, name in (
        ("v1", "configmaps", "ConfigMap", settings.routes_configmap),
        ("apps/v1", "deployments", "Deployment", settings.beat_name),
    ):
        probe = {"kind": kind, "metadata": {"namespace": namespace, "name": name}}
        if (kind, name) not in wanted and cluster.cached(probe) is not None:  # cached: ours (labels)
            await cluster.kube.delete(api_version, plural, namespace, name)
            logger.info("deleted %s %s/%s: no QueueWorker needs it", kind, namespace, name)
    entries = [entry for qw in qws for entry in schedules.desired_entries(qw)]
    await asyncio.to_thread(
        schedules.sync_schedules, settings.redis_url, schedules.owner_prefix(namespace), entries
    )


async def correct_drift(specs: Specs, cluster: Cluster, settings: Settings) -> None:
    """The drift timer: every drift_interval, apply again the QueueWorkers with a child that differs
    from its spec, and the shared objects that differ (a cluster without drift sees no writes)."""
    limit = asyncio.Semaphore(8)

    async def one(body: Mapping[str, Any]) -> None:
        async with limit:
            try:
                await reconcile(specs, cluster, settings, body, quiet=True)
            except kopf.TemporaryError as exc:
                logger.warning("drift correction of %s/%s failed: %s", *_where(body), exc)

    async def differs(body: Mapping[str, Any]) -> bool:
        try:
            qw = specs.parse(body)
        except SpecError:
            return False  # reported already; nothing it runs is touched
        autoscaled = qw.spec.autoscaling.mode != "off"
        for obj in builders.queueworker_objects(qw, settings):
            if await drifted(cluster, obj, autoscaled):
                return True
        return False

    await specs.ready.wait()
    while True:
        await asyncio.sleep(settings.drift_interval)
        for namespace in specs.namespaces():
            bodies = [b for b in specs.bodies(namespace) if await differs(b)]
            await asyncio.gather(*(one(b) for b in bodies))
            cluster.request_namespace(namespace, forced=False)
