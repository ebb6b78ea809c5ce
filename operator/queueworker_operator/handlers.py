"""kopf handlers: a few lines each; the work is in reconcile.py, autoscaler.py and kube.py.

Run: `kopf run -m queueworker_operator --standalone -A` (or `-n NS`), optionally
`--liveness=http://0.0.0.0:8080/healthz`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import kopf
from queueworker.api.spec import GROUP, PLURAL, VERSION
from queueworker.builders.labels import COMPONENT_KEY, MANAGED_BY, MANAGED_BY_KEY
from queueworker.contract import redact
from queueworker.settings import ConfigError, Settings

from queueworker_operator import kube, metrics, reconcile
from queueworker_operator.autoscaler import Autoscaler
from queueworker_operator.state import NamespaceSync, OperatorState, summary
from queueworker_operator.status import StatusKeeper

logger = logging.getLogger(__name__)

QW = (GROUP, VERSION, PLURAL)
WORKERS = {MANAGED_BY_KEY: MANAGED_BY, COMPONENT_KEY: "worker"}


@kopf.on.startup()
async def startup(*, settings: kopf.OperatorSettings, memo: kopf.Memo, **kwargs: Any) -> None:
    """Every kopf setting, the operator's own config, and the background loops."""
    try:
        config = Settings.from_env()
    except ConfigError as exc:  # the operator cannot run: exit with the message (never a URL: settings.py)
        raise kopf.PermanentError(f"invalid operator configuration: {exc}") from None
    settings.watching.server_timeout = 270  # stalled watch streams are a known kopf failure: bound them
    settings.watching.client_timeout = 300
    settings.watching.connect_timeout = 30
    settings.watching.reconnect_backoff = 1.0
    settings.networking.request_timeout = 60
    settings.networking.connect_timeout = 15
    settings.posting.enabled = False  # our Events are posted explicitly, never from log lines
    settings.persistence.finalizer = "queueworker.dev/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="queueworker.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="queueworker.dev", key="last-handled-configuration"
    )
    settings.execution.max_workers = 4
    info = kube.connection_info()
    if info is None:
        raise kopf.PermanentError("no Kubernetes credentials: no service account and no kubeconfig")
    client = kube.Kube(info)
    rt = OperatorState(settings=config, kube=client, status=StatusKeeper(client))
    rt.catalog.index = kwargs["qw_index"]
    rt.namespaces = NamespaceSync(
        lambda ns: reconcile.sync_namespace(rt, ns), secret_url=config.redis_url, ready=rt.ready
    )
    rt.tasks.append(asyncio.create_task(rt.namespaces.run(), name="queueworker-namespaces"))
    rt.tasks.append(asyncio.create_task(Autoscaler(rt).run(), name="queueworker-autoscaler"))
    rt.tasks.append(asyncio.create_task(reconcile.correct_drift(rt), name="queueworker-drift"))
    rt.metrics_server = metrics.serve(config.metrics_port)
    memo["state"] = rt
    logger.info(
        "QueueWorker operator started: autoscale every %.1fs, drift check every %.0fs",
        config.autoscale_interval,
        config.drift_interval,
    )


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    rt: OperatorState | None = memo.get("state")
    if rt is not None:
        await rt.close()


@kopf.on.login()
def login(**_: Any) -> kopf.ConnectionInfo | None:
    return kube.connection_info()


@kopf.on.probe(id="autoscaler_tick_age")
def autoscaler_tick_age(memo: kopf.Memo, **_: Any) -> float | None:
    rt: OperatorState | None = memo.get("state")
    return None if rt is None or rt.last_tick is None else round(time.time() - rt.last_tick, 1)


@kopf.index(*QW)
def qw_index(*, namespace: str | None, body: kopf.Body, **_: Any) -> dict[str, dict[str, Any]]:
    return {namespace or "": summary(body)}


@kopf.on.resume(*QW)
@kopf.on.create(*QW)
@kopf.on.update(*QW, field="spec")
async def reconcile_queueworker(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo["state"].ready.set()
    await reconcile.reconcile(memo["state"], body)


@kopf.on.delete(*QW)
async def queueworker_deleted(
    *, namespace: str | None, name: str, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    rt: OperatorState = memo["state"]
    rt.ready.set()
    namespace = namespace or "default"
    rt.catalog.forget(namespace, name)
    rt.status.forget(namespace, name)
    rt.deployments.pop((namespace, name), None)
    metrics.forget(namespace, name)
    try:
        await asyncio.wait_for(rt.request_namespace(namespace), timeout=60)
    except Exception as exc:  # retried by the namespace sync; deletion is not blocked by a broker outage
        reason = redact(repr(exc), rt.settings.redis_url)
        logger.warning(f"shared objects of {namespace} not re-synced yet: {reason}")


@kopf.on.event("apps", "v1", "deployments", labels=WORKERS)
async def worker_deployment_event(type: str, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    rt: OperatorState | None = memo.get("state")
    if rt is not None:
        rt.ready.set()
        await reconcile.deployment_changed(rt, body, deleted=type == "DELETED")
