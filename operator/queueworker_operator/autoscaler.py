"""The builtin autoscaler: one loop for every QueueWorker the operator serves.

Each tick reads the queue stats of all their queues in one round trip of pipelines (and writes the
`queueworker:targets` hash the exporter reads), reports backlog, reserved and oldest wait in each status,
and for mode builtin runs the shared scaling loop (queueworker.scaling.loop) on the worker Deployment:
the start time is measured on the worker pods (creation to Ready; the pods are listed only while some are
not ready or the ready count changed), and the pods holding tasks (`queueworker:held`) are kept: before a
scale-down idle pods get the lowest `controller.kubernetes.io/pod-deletion-cost`, so the ReplicaSet
removes them before busy ones. With the broker unreachable, replicas are held and BrokerReachable=False.

The loop is synchronous: what needs the API (listing pods) is awaited before its step, the held records
are read once per tick with the queue stats, and the scale the step asks for is carried out (awaited)
after it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis
from queueworker import builders
from queueworker.api.spec import QueueWorker
from queueworker.broker.stats import QueueStats, queue_stats
from queueworker.builders import labels
from queueworker.contract import count_held, held_records, redact, sync_targets
from queueworker.scaling import observe
from queueworker.scaling.loop import ScalingLoop
from queueworker.scaling.policy import Decision, Observation, PolicyConfig
from queueworker.scaling.startup import pod_start_seconds
from queueworker.settings import Settings

from queueworker_operator import metrics
from queueworker_operator.broker import Broker
from queueworker_operator.cluster import Cluster, DeploymentSummary, Key
from queueworker_operator.kube import KubeError
from queueworker_operator.report import involved
from queueworker_operator.specs import Specs
from queueworker_operator.status import Cond, now_iso

logger = logging.getLogger(__name__)

DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
IDLE_COST, BUSY_COST = -100, 100


@dataclass(frozen=True)
class Reading:
    """One tick's queue stats of every queue, or the reason it failed."""

    stats: dict[str, QueueStats] | None
    error: str | None = None
    #: The held records (queueworker.contract.held_records) read with the queue stats: who holds what.
    held: Mapping[str, str] = field(default_factory=dict)


def observation(qw: QueueWorker, stats: dict[str, QueueStats], now: float) -> Observation:
    """The QueueWorker's queues as one policy observation (see queueworker/scaling/observe.py)."""
    return observe.observation(stats, qw.spec.queues, now)


def busy_pods(held: Mapping[str, str], qw: QueueWorker) -> dict[str, int]:
    """Tasks held per worker pod of `qw`, from the tick's held records."""
    busy: dict[str, int] = {}
    for host, count in count_held(held, qw.spec.queues).items():
        pod = hostname_of(host)
        busy[pod] = busy.get(pod, 0) + count
    return busy


def hostname_of(heartbeat_host: str) -> str:
    """A Celery hostname (`celery@pod-name` or `pod-name`) to the pod name."""
    return heartbeat_host.rsplit("@", 1)[-1].split(".", 1)[0]


class PodFleet:
    """One QueueWorker's worker Deployment as the scaling loop sees it (queueworker.scaling.loop.Fleet):
    the pods listed before the step, busy pods read from Redis when asked, and the scale asked for kept
    in `request` for the caller to carry out."""

    def __init__(self, current: int, pods: list[dict[str, Any]], busy: Callable[[], dict[str, int]]) -> None:
        self.current, self.pods, self._busy = current, pods, busy
        self.request: tuple[int, dict[str, int]] | None = None

    def replicas(self) -> int:
        return self.current

    def start_times(self, seen: Callable[[str], bool]) -> Iterable[tuple[str, float]]:
        for pod in self.pods:
            meta = pod.get("metadata") or {}
            uid = str(meta.get("uid") or meta.get("name"))
            if not seen(uid) and (seconds := pod_start_seconds(pod)) is not None:
                yield uid, seconds

    def busy(self) -> Mapping[str, int]:
        return self._busy()

    def scale(self, replicas: int, keep: Mapping[str, int]) -> None:
        self.request = (replicas, dict(keep))


#: QueueWorkers handled at once in a tick: each may wait on the API (pod lists, status, scale), so 1,000 of
#: them in turn would make a tick last minutes; the client's connections bound the rest.
CONCURRENCY = 16


class Autoscaler:
    def __init__(self, specs: Specs, cluster: Cluster, broker: Broker, settings: Settings) -> None:
        self.specs, self.cluster, self.broker, self.settings = specs, cluster, broker, settings
        #: When the last tick ended (the liveness probe's age) and how many ticks ran.
        self.last_tick: float | None = None
        self.ticks = 0
        #: Policy state and worker pods' start times per QueueWorker (the shared loop keeps them).
        self.loop = ScalingLoop()
        #: The ready count per QueueWorker when its pods were last listed.
        self.listed_ready: dict[Key, int] = {}
        #: Namespaces that had QueueWorkers during this run: their stale targets are removed.
        self.namespaces: set[str] = set()

    async def run(self) -> None:
        await self.specs.ready.wait()
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("autoscaler tick failed")
            await asyncio.sleep(self.settings.autoscale_interval)

    def _read(self, qws: list[QueueWorker], namespaces: set[str]) -> Reading:
        client = self.broker.client()
        queues = list(dict.fromkeys(q for qw in qws for q in qw.spec.queues))
        stats = queue_stats(client, queues) if queues else {}
        held = held_records(client) if queues else {}
        sync_targets(client, qws, namespaces)
        return Reading(stats, held=held)

    async def tick(self) -> None:
        qws = self.specs.all()
        now = time.monotonic()
        with metrics.AUTOSCALER_TICK.time():
            await self._tick(qws, now)
        self.last_tick = time.time()
        self.ticks += 1

    async def _tick(self, qws: list[QueueWorker], now: float) -> None:
        try:
            self.namespaces.update(self.specs.namespaces())
            reading = await asyncio.to_thread(self._read, qws, set(self.namespaces))
        except redis.RedisError as exc:
            reading = Reading(None, redact(f"{type(exc).__name__}: {exc}", self.broker.url))
            if self.broker.ok is not False:
                logger.warning("broker unreachable, holding replicas: %s", reading.error)
        self.broker.ok = reading.stats is not None
        limit = asyncio.Semaphore(CONCURRENCY)

        async def one(qw: QueueWorker) -> None:
            async with limit:
                try:
                    await self.handle(qw, reading, now)
                except (KubeError, OSError, redis.RedisError) as exc:
                    logger.warning(
                        "autoscaling %s/%s failed: %s",
                        qw.namespace,
                        qw.name,
                        redact(str(exc), self.broker.url),
                    )
                except Exception:  # one QueueWorker's failure never stops the others
                    logger.exception("autoscaling %s/%s failed", qw.namespace, qw.name)

        await asyncio.gather(*(one(qw) for qw in qws))
        live = {(qw.namespace, qw.name) for qw in qws}
        self.loop.forget(live)
        for key in [k for k in self.listed_ready if k not in live]:
            del self.listed_ready[key]

    async def handle(self, qw: QueueWorker, reading: Reading, now: float) -> None:
        key = (qw.namespace, qw.name)
        fields: dict[str, Any] = {}
        if reading.stats is None:
            message = f"cannot read the broker, replicas held: {reading.error}"
            broker = Cond(False, "BrokerUnreachable", message)
            obs = None
        else:
            broker = Cond(True, "BrokerReachable", "the broker answered the last read")
            obs = observation(qw, reading.stats, now)
            fields = {
                "backlog": obs.backlog,
                "reserved": obs.reserved,
                "oldestWaitSeconds": None if obs.oldest_wait is None else round(obs.oldest_wait),
            }
        summary = self.cluster.deployments.get(key)
        if qw.spec.autoscaling.mode == "builtin" and summary is not None and summary.replicas is not None:
            config = PolicyConfig.from_spec(qw.spec)
            pods = await self.new_pods(qw, summary) if obs is not None else []
            fleet = PodFleet(summary.replicas, pods, lambda: busy_pods(reading.held, qw))
            decision = self.loop.step(key, config, obs, fleet)
            fields["desiredReplicas"] = decision.replicas
            if fleet.request is not None:
                _, keep = fleet.request
                await self.scale(qw, summary.replicas, decision, keep)
                fields["lastScaleTime"] = now_iso()
                fields["lastScaleReason"] = decision.reason[:1024]
            metrics.REPLICAS_DESIRED.labels(qw.namespace, qw.name).set(decision.replicas)
        await self.cluster.status.update(
            qw.namespace, qw.name, fields=fields, conditions={"BrokerReachable": broker}
        )

    async def new_pods(self, qw: QueueWorker, summary: DeploymentSummary) -> list[dict[str, Any]]:
        """The worker pods to measure start times on (creation to Ready; the loop learns each once): listed
        only while some are not ready or the ready count changed since the last list, never for a
        Deployment at zero with no pod. A failed list is logged: the policy then uses what it learnt
        before, or its default."""
        key = (qw.namespace, qw.name)
        if not summary.replicas and not summary.ready:  # no pod to learn from
            return []
        if summary.ready >= (summary.replicas or 0) and self.listed_ready.get(key) == summary.ready:
            return []
        try:
            selector = labels.selector(qw.name, "worker")
            pods = await self.cluster.kube.list("v1", "pods", qw.namespace, labels=selector)
        except KubeError as exc:
            logger.warning("listing the worker pods of %s/%s failed: %s", qw.namespace, qw.name, exc)
            return []
        self.listed_ready[key] = summary.ready
        return list(pods)

    async def scale(self, qw: QueueWorker, current: int, decision: Decision, keep: Mapping[str, int]) -> None:
        name = builders.worker_name(qw)
        if decision.replicas < current:
            await self.mark_pods(qw, keep)
        await self.cluster.kube.scale("apps/v1", "deployments", qw.namespace, name, decision.replicas)
        summary = self.cluster.deployments.get((qw.namespace, qw.name))
        if summary is not None:
            summary.replicas = decision.replicas
            if summary.generation:
                summary.generation += 1  # a replicas change is a spec change: the server bumps it too
        direction = "up" if decision.replicas > current else "down"
        metrics.SCALE_EVENTS.labels(qw.namespace, qw.name, direction).inc()
        body = {"metadata": {"namespace": qw.namespace, "name": qw.name, "uid": qw.uid}}
        reason = "ScaledUp" if direction == "up" else "ScaledDown"
        await self.cluster.kube.event(
            involved(body),
            "Normal",
            reason,
            f"worker replicas {current} -> {decision.replicas}: {decision.reason}",
        )
        logger.info(
            "%s/%s: %s %d -> %d (%s)",
            qw.namespace,
            qw.name,
            reason,
            current,
            decision.replicas,
            decision.reason,
        )

    async def mark_pods(self, qw: QueueWorker, busy: Mapping[str, int]) -> None:
        """Idle pods get the lowest deletion cost, busy ones a high one (by tasks held), before a
        scale-down."""
        selector = labels.selector(qw.name, "worker")
        pods = await self.cluster.kube.list("v1", "pods", qw.namespace, labels=selector)
        for pod in pods:
            meta = pod["metadata"]
            if meta.get("deletionTimestamp"):
                continue
            cost = str(BUSY_COST * busy[meta["name"]] if busy.get(meta["name"]) else IDLE_COST)
            if (meta.get("annotations") or {}).get(DELETION_COST) != cost:
                kube = self.cluster.kube
                await kube.annotate("v1", "pods", qw.namespace, meta["name"], {DELETION_COST: cost})
