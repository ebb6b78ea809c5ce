"""The cluster as the operator knows it: the API client, the status writer, the objects it applied (a
cache fed by kopf's watches, complete before any handler runs), the worker Deployments as last seen, and
the per-namespace sync queue of the shared objects.

Drift is read from the cache: a check of every child costs no request, and only a child that differs
from what is desired is applied again, so a cluster where nothing changes sees no writes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from queueworker.contract import redact

from queueworker_operator.kube import Kube, plural_of
from queueworker_operator.status import StatusKeeper

logger = logging.getLogger(__name__)

Key = tuple[str, str]
#: kind -> kopf index of the operator's children of that kind: (namespace, name) -> [slim body].
Children = Mapping[str, Mapping[Any, Iterable[Mapping[str, Any]]]]


class NamespaceSync:
    """Coalesces requests to re-render a namespace's shared objects: a burst of QueueWorker events makes
    one sync per namespace. A failed sync is retried after `retry_delay`. `sync(namespace, forced)`:
    `forced` unless every request of the batch was a drift check (which applies only what differs)."""

    def __init__(
        self,
        sync: Callable[[str, bool], Awaitable[None]],
        retry_delay: float = 5.0,
        secret_url: str = "",
        ready: asyncio.Event | None = None,
    ) -> None:
        self._sync = sync
        self._ready = ready
        self._secret_url = secret_url
        self._pending: dict[str, tuple[list[asyncio.Future[None]], bool]] = {}
        self._wake = asyncio.Event()
        self.retry_delay = retry_delay

    def request(self, namespace: str, forced: bool = True) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        futures, was_forced = self._pending.get(namespace, ([], False))
        self._pending[namespace] = ([*futures, future], was_forced or forced)
        self._wake.set()
        return future

    def _retry(self, namespace: str) -> None:
        futures, _ = self._pending.get(namespace, ([], True))
        self._pending[namespace] = (futures, True)
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
            for namespace, (futures, forced) in sorted(batch.items()):
                try:
                    await self._sync(namespace, forced)
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


#: See Cluster.applying: well under the client's 32 connections, which status and the autoscaler share.
APPLY_CONCURRENCY = 16


@dataclass
class DeploymentSummary:
    """A worker Deployment as last seen, summarized: what the autoscaler scales from and status reports.
    (Not the scaling policy's Observation, which is a reading of queues.)"""

    name: str
    replicas: int | None
    ready: int
    available: int
    selector: str
    generation: int = 0  # metadata.generation; 0 when the server did not say


@dataclass
class Cluster:
    kube: Kube
    status: StatusKeeper
    #: The children kopf watches (labelled managed-by the operator), by kind; see handlers.py.
    children: Children = field(default_factory=dict)
    deployments: dict[Key, DeploymentSummary] = field(default_factory=dict)
    namespaces: NamespaceSync | None = None
    #: (namespace, name, mode) whose other modes' autoscaler objects are known to be gone.
    scalers_removed: set[tuple[str, str, str]] = field(default_factory=set)
    #: QueueWorkers applied at once. kopf runs a handler per object with no bound, so 1,000 created
    #: together would otherwise queue thousands of requests behind the client's connections, where
    #: they time out and are retried (apply.reconcile).
    applying: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(APPLY_CONCURRENCY))

    def cached(self, obj: Mapping[str, Any]) -> dict[str, Any] | None:
        """The live object of `obj`'s kind and name as the watch last saw it (slim: see fields.slim)."""
        index = self.children.get(obj["kind"])
        meta = obj["metadata"]
        store = None if index is None else index.get((meta.get("namespace"), meta["name"]))
        return None if store is None else next((dict(b) for b in store), None)

    async def live(self, obj: Mapping[str, Any]) -> dict[str, Any] | None:
        """The live object of `obj`'s kind and name: from the cache, else read (a foreign object without
        the operator's labels is never in the cache; nor is one created a moment ago)."""
        cached = self.cached(obj)
        if cached is not None:
            return cached
        meta = obj["metadata"]
        return await self.kube.get(obj["apiVersion"], plural_of(obj), meta.get("namespace"), meta["name"])

    def saw_deployment(self, key: Key, summary: DeploymentSummary) -> DeploymentSummary:
        """Record a worker Deployment as read from the API; a copy older (lower metadata.generation) than
        one already known, e.g. after the autoscaler scaled it, is ignored. Returns what is now known."""
        previous = self.deployments.get(key)
        if previous is not None and 0 < summary.generation < previous.generation:
            return previous
        self.deployments[key] = summary
        return summary

    def forget(self, namespace: str, name: str) -> None:
        self.status.forget(namespace, name)
        self.deployments.pop((namespace, name), None)
        self.scalers_removed = {k for k in self.scalers_removed if k[:2] != (namespace, name)}

    def request_namespace(self, namespace: str, forced: bool = True) -> asyncio.Future[None]:
        assert self.namespaces is not None, "the operator has not started"
        return self.namespaces.request(namespace, forced)

    async def close(self) -> None:
        await self.kube.close()
