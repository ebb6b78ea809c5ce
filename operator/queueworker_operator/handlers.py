"""kopf handlers: a few lines each; the work is in apply.py, report.py, autoscaler.py and kube.py.

Run: `kopf run -m queueworker_operator --standalone -A` (or `-n NS`), optionally
`--liveness=http://0.0.0.0:8080/healthz`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import kopf
from queueworker.api.spec import GROUP, PLURAL, VERSION
from queueworker.builders.labels import COMPONENT_KEY, MANAGED_BY, MANAGED_BY_KEY
from queueworker.contract import redact
from queueworker.settings import ConfigError, Settings

from queueworker_operator import apply, fields, kube, metrics, report
from queueworker_operator.autoscaler import Autoscaler
from queueworker_operator.broker import Broker
from queueworker_operator.cluster import Cluster, NamespaceSync
from queueworker_operator.specs import Specs, summary
from queueworker_operator.status import StatusKeeper

logger = logging.getLogger(__name__)

QW = (GROUP, VERSION, PLURAL)
CHILDREN = {MANAGED_BY_KEY: MANAGED_BY}
WORKERS = {**CHILDREN, COMPONENT_KEY: "worker"}


@dataclass
class Operator:
    """What kopf's memo holds: the pieces the handlers hand to the functions that take them."""

    settings: Settings
    specs: Specs
    cluster: Cluster
    broker: Broker
    autoscaler: Autoscaler
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    metrics_server: Any = None

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.tasks.clear()
        if self.metrics_server is not None:
            self.metrics_server.shutdown()
            self.metrics_server.server_close()
            self.metrics_server = None
        self.broker.close()
        await self.cluster.close()


@kopf.on.startup()
async def startup(*, settings: kopf.OperatorSettings, memo: kopf.Memo, **kwargs: Any) -> None:
    """Every kopf setting, the operator's own config, and the background loops."""
    try:
        config = Settings.from_env()
    except ConfigError as exc:  # the operator cannot run: exit with the message (never a URL: settings.py)
        raise kopf.PermanentError(f"invalid operator configuration: {exc}") from None
    # Watches that recover. kopf lists each watched resource once, then re-watches from the last
    # resourceVersion after every stream end (bookmarks keep it current: the API server sends one 2 s
    # before it ends a watch when it moved): a re-list happens only after a 410 (an API server restart).
    # A stream that dies silently (open, delivering nothing: kopf#1276) is given up api_timeout (30 s)
    # after it was opened and the next opens from where it stood, with no re-list. The API server ends a
    # live one 5 s sooner, so only a dead one hits the client timeout. The next may land on a pooled
    # keep-alive connection that died with it, but aiohttp reuses one only while idle under 15 s: so
    # only after a first timeout within 15 s, and the second ends within 47 s. Under 60 s either way;
    # the cost is one watch request (a read) per watched resource every 25 s.
    settings.watching.server_timeout = config.api_timeout - 5  # an int: the API server takes no "25.0"
    settings.watching.client_timeout = config.api_timeout
    settings.watching.inactivity_timeout = config.api_timeout  # the same bound (kopf's default: 70 s)
    settings.watching.connect_timeout = 10
    settings.watching.reconnect_backoff = 1.0
    # While the API server is down (a restart), requests retry at most 10 s apart for 55 s: a stream
    # resumes within 10 s of its return; the watch retries again after that, a handler later.
    settings.networking.error_backoffs = (1, 2, 4, 8, 10, 10, 10, 10)
    # A request sent on a pooled connection that died silently (one idle under 15 s) fails after 30 s,
    # kopf's and kube.py's alike; a handler is then retried apply.RETRY_DELAY (10 s) later: within 55 s.
    settings.networking.request_timeout = config.api_timeout
    settings.networking.connect_timeout = 10
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
    client = kube.Kube(info, timeout=config.api_timeout)
    specs = Specs()
    specs.index = kwargs["qw_index"]
    children = {
        "Deployment": kwargs["child_deployments"],
        "PodDisruptionBudget": kwargs["child_pdbs"],
        "ConfigMap": kwargs["child_configmaps"],
        "HorizontalPodAutoscaler": kwargs["child_hpas"],
    }
    cluster = Cluster(kube=client, status=StatusKeeper(client), children=children)
    broker = Broker(config.redis_url, config.broker_env())
    cluster.namespaces = NamespaceSync(
        lambda ns, forced: apply.sync_namespace(specs, cluster, config, ns, forced),
        secret_url=config.redis_url,
        ready=specs.ready,
    )
    autoscaler = Autoscaler(specs, cluster, broker, config)
    op = Operator(config, specs, cluster, broker, autoscaler)
    op.tasks.append(asyncio.create_task(cluster.namespaces.run(), name="queueworker-namespaces"))
    op.tasks.append(asyncio.create_task(autoscaler.run(), name="queueworker-autoscaler"))
    op.tasks.append(
        asyncio.create_task(apply.correct_drift(specs, cluster, config), name="queueworker-drift")
    )
    op.metrics_server = metrics.serve(config.metrics_port)
    memo["operator"] = op
    logger.info(
        "QueueWorker operator started: autoscale every %.1fs, drift check every %.0fs",
        config.autoscale_interval,
        config.drift_interval,
    )


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    op: Operator | None = memo.get("operator")
    if op is not None:
        await op.close()


@kopf.on.login()
def login(**_: Any) -> kopf.ConnectionInfo | None:
    return kube.connection_info()


@kopf.on.probe(id="autoscaler_tick_age")
def autoscaler_tick_age(memo: kopf.Memo, **_: Any) -> float | None:
    op: Operator | None = memo.get("operator")
    last = None if op is None else op.autoscaler.last_tick
    return None if last is None else round(time.time() - last, 1)


@kopf.index(*QW)
def qw_index(*, namespace: str | None, body: kopf.Body, **_: Any) -> dict[str, dict[str, Any]]:
    return {namespace or "": summary(body)}


# The children the operator applied, as the watches see them: drift is read here, not from the API.
# kopf fills every index before any handler runs.
def _child(namespace: str | None, name: str | None, body: kopf.Body) -> dict[Any, dict[str, Any]]:
    return {(namespace, name): fields.slim(body)}


@kopf.index("apps", "v1", "deployments", labels=CHILDREN)
def child_deployments(*, namespace: str | None, name: str | None, body: kopf.Body, **_: Any) -> Any:
    return _child(namespace, name, body)


@kopf.index("policy", "v1", "poddisruptionbudgets", labels=CHILDREN)
def child_pdbs(*, namespace: str | None, name: str | None, body: kopf.Body, **_: Any) -> Any:
    return _child(namespace, name, body)


@kopf.index("", "v1", "configmaps", labels=CHILDREN)
def child_configmaps(*, namespace: str | None, name: str | None, body: kopf.Body, **_: Any) -> Any:
    return _child(namespace, name, body)


@kopf.index("autoscaling", "v2", "horizontalpodautoscalers", labels=CHILDREN)
def child_hpas(*, namespace: str | None, name: str | None, body: kopf.Body, **_: Any) -> Any:
    return _child(namespace, name, body)


@kopf.on.resume(*QW)
@kopf.on.create(*QW)
@kopf.on.update(*QW, field="spec")
async def reconcile_queueworker(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    op: Operator = memo["operator"]
    op.specs.ready.set()
    await apply.reconcile(op.specs, op.cluster, op.settings, body, patch=patch)


@kopf.on.delete(*QW)
async def queueworker_deleted(
    *, namespace: str | None, name: str, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    op: Operator = memo["operator"]
    op.specs.ready.set()
    namespace = namespace or "default"
    op.specs.forget(namespace, name)
    op.cluster.forget(namespace, name)
    metrics.forget(namespace, name)
    try:
        await asyncio.wait_for(op.cluster.request_namespace(namespace), timeout=60)
    except Exception as exc:  # retried by the namespace sync; deletion is not blocked by a broker outage
        reason = redact(repr(exc), op.settings.redis_url)
        logger.warning(f"shared objects of {namespace} not re-synced yet: {reason}")


@kopf.on.event("apps", "v1", "deployments", labels=WORKERS)
async def worker_deployment_event(type: str, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    op: Operator | None = memo.get("operator")
    if op is not None:
        op.specs.ready.set()
        await report.deployment_changed(op.specs, op.cluster, body, deleted=type == "DELETED")
