"""What the running operator keeps in memory: the catalog of QueueWorkers, observed worker Deployments,
and the per-namespace sync queue. One `OperatorState` lives in kopf's memo; handlers reach it from there.

The catalog reads kopf's index of QueueWorker bodies (complete before any handler runs, so a namespace
is never rendered from half of its QueueWorkers) and parses each body once per spec. A QueueWorker
whose spec became invalid keeps its last valid parse, so nothing it runs is touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis
from queueworker import builders
from queueworker.api.spec import FieldError, QueueWorker, SpecError, parse_manifest
from queueworker.broker.client import connect
from queueworker.broker.url import parse as parse_broker_url
from queueworker.contract import redact
from queueworker.settings import Settings

from queueworker_operator.kube import Kube
from queueworker_operator.status import StatusKeeper

logger = logging.getLogger(__name__)

Key = tuple[str, str]
#: Annotation on a QueueWorker: its last valid spec (compact JSON), so that after a restart an update
#: to an invalid spec still leaves the shared objects (routes, beat entries) as they were.
LAST_VALID = "queueworker.dev/last-valid-spec"


def summary(body: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a QueueWorker body the catalog needs (what the index stores)."""
    meta = body.get("metadata", {})
    kept = {
        k: meta[k]
        for k in ("name", "namespace", "uid", "generation", "labels", "deletionTimestamp")
        if meta.get(k) is not None
    }
    last_valid = (meta.get("annotations") or {}).get(LAST_VALID)
    if last_valid is not None:
        kept["annotations"] = {LAST_VALID: last_valid}
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": kept,
        "spec": body.get("spec"),
    }


def spec_text(spec: Any) -> str:
    return json.dumps(spec, sort_keys=True, separators=(",", ":"))


def parse(body: Mapping[str, Any]) -> QueueWorker:
    """The spec model's view of a body, plus what builders cannot build; raises SpecError."""
    manifest = summary(body)
    manifest["metadata"] = {
        k: v for k, v in manifest["metadata"].items() if k not in ("deletionTimestamp", "annotations")
    }
    qw = parse_manifest(manifest, manifest["metadata"].get("namespace") or "default")
    problems = [p if isinstance(p, FieldError) else FieldError(*p) for p in builders.problems(qw)]
    if problems:
        raise SpecError(problems)
    return qw


class Catalog:
    """Parsed QueueWorkers, from kopf's index of bodies by namespace."""

    def __init__(self) -> None:
        self.index: Mapping[str, Iterable[Mapping[str, Any]]] = {}
        self._parsed: dict[Key, tuple[str, QueueWorker | SpecError]] = {}
        self._good: dict[Key, QueueWorker] = {}

    def parse(self, body: Mapping[str, Any]) -> QueueWorker:
        """Parse (cached per uid and spec); a valid result becomes the last known good one."""
        meta = body.get("metadata", {})
        key = (meta.get("namespace") or "default", meta.get("name", ""))
        parts = [meta.get("uid"), meta.get("generation"), meta.get("labels"), body.get("spec")]
        fingerprint = json.dumps(parts, sort_keys=True, default=str)
        cached = self._parsed.get(key)
        if cached is None or cached[0] != fingerprint:
            try:
                result: QueueWorker | SpecError = parse(body)
            except SpecError as exc:
                result = exc
            cached = (fingerprint, result)
            self._parsed[key] = cached
        if isinstance(cached[1], SpecError):
            raise cached[1]
        self._good[key] = cached[1]
        return cached[1]

    def last_good(self, namespace: str, name: str, uid: str | None) -> QueueWorker | None:
        qw = self._good.get((namespace, name))
        return qw if qw is not None and qw.uid == uid else None

    def _recorded(self, body: Mapping[str, Any]) -> QueueWorker | None:
        """The last valid spec recorded on the object (after a restart, memory has none)."""
        meta = body.get("metadata", {})
        text = (meta.get("annotations") or {}).get(LAST_VALID)
        if not text:
            return None
        try:
            qw = parse({**body, "spec": json.loads(text)})
        except (ValueError, SpecError):
            return None
        self._good[(meta.get("namespace") or "default", meta.get("name", ""))] = qw
        return qw

    def is_invalid(self, namespace: str, name: str) -> bool:
        cached = self._parsed.get((namespace, name))
        return cached is not None and isinstance(cached[1], SpecError)

    def namespace(self, namespace: str) -> list[QueueWorker]:
        """The QueueWorkers of a namespace that are not being deleted: valid ones, or their last good."""
        result = []
        for body in list(self.index.get(namespace, ())):
            meta = body.get("metadata", {})
            if meta.get("deletionTimestamp"):
                continue
            try:
                result.append(self.parse(body))
            except SpecError:
                good = self.last_good(namespace, meta.get("name", ""), meta.get("uid"))
                good = good or self._recorded(body)
                if good is not None:
                    result.append(good)
        return sorted(result, key=lambda q: q.name)

    def namespaces(self) -> list[str]:
        return sorted(ns for ns in list(self.index.keys()) if ns)

    def all(self) -> list[QueueWorker]:
        return [qw for ns in self.namespaces() for qw in self.namespace(ns)]

    def forget(self, namespace: str, name: str) -> None:
        self._parsed.pop((namespace, name), None)
        self._good.pop((namespace, name), None)


class NamespaceSync:
    """Coalesces requests to re-render a namespace's shared objects: a burst of QueueWorker events makes
    one sync per namespace. A failed sync is retried after `retry_delay`."""

    def __init__(
        self,
        sync: Callable[[str], Awaitable[None]],
        retry_delay: float = 5.0,
        secret_url: str = "",
        ready: asyncio.Event | None = None,
    ) -> None:
        self._sync = sync
        self._ready = ready
        self._secret_url = secret_url
        self._pending: dict[str, list[asyncio.Future[None]]] = {}
        self._wake = asyncio.Event()
        self.retry_delay = retry_delay

    def request(self, namespace: str) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(namespace, []).append(future)
        self._wake.set()
        return future

    def _retry(self, namespace: str) -> None:
        self._pending.setdefault(namespace, [])
        self._wake.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        if self._ready is not None:
            await self._ready.wait()  # never render a namespace from a half-filled index
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(0.05)  # let a burst of requests gather
            batch, self._pending = self._pending, {}
            for namespace, futures in sorted(batch.items()):
                try:
                    await self._sync(namespace)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    logger.warning(
                        "syncing the shared objects of namespace %s failed, retrying in %.0fs: %s",
                        namespace,
                        self.retry_delay,
                        redact(repr(exc), self._secret_url),
                    )
                    loop.call_later(self.retry_delay, self._retry, namespace)
                    for future in futures:
                        if not future.done():
                            future.set_exception(exc)
                            future.exception()  # retrieved: waiters are optional
                else:
                    for future in futures:
                        if not future.done():
                            future.set_result(None)


@dataclass
class Observed:
    """A worker Deployment as last seen: what the autoscaler scales from and status reports."""

    name: str
    replicas: int | None
    ready: int
    available: int
    selector: str
    generation: int = 0  # metadata.generation; 0 when the server did not say


@dataclass
class OperatorState:
    settings: Settings
    kube: Kube
    status: StatusKeeper
    catalog: Catalog = field(default_factory=Catalog)
    deployments: dict[Key, Observed] = field(default_factory=dict)
    namespaces: NamespaceSync | None = None
    broker_client: redis.Redis | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    metrics_server: Any = None
    last_tick: float | None = None
    #: Set by the first resource handler: kopf runs handlers only once its index of QueueWorkers is full,
    #: so from then on the catalog sees every QueueWorker. Background loops wait for it.
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    ticks: int = 0
    broker_ok: bool | None = None

    def saw_deployment(self, key: Key, observed: Observed) -> Observed:
        """Record a worker Deployment as read from the API; a copy older (lower metadata.generation) than
        one already known, e.g. after the autoscaler scaled it, is ignored. Returns what is now known."""
        previous = self.deployments.get(key)
        if previous is not None and 0 < observed.generation < previous.generation:
            return previous
        self.deployments[key] = observed
        return observed

    def broker(self) -> redis.Redis:
        if self.broker_client is None:
            self.broker_client = connect(
                parse_broker_url(self.settings.redis_url, self.settings.broker_env()),
                timeout=5.0,
                connect_timeout=3.0,
                health_check_interval=30,
            )
        return self.broker_client

    def request_namespace(self, namespace: str) -> asyncio.Future[None]:
        assert self.namespaces is not None, "the operator has not started"
        return self.namespaces.request(namespace)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.metrics_server is not None:
            self.metrics_server.shutdown()
            self.metrics_server.server_close()
            self.metrics_server = None
        if self.broker_client is not None:
            self.broker_client.close()
            self.broker_client = None
        self.tasks.clear()
        await self.kube.close()
