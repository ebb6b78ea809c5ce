"""The operator SIGKILLed in the middle of reconciling (some QueueWorkers' objects created, others not,
one object of a QueueWorker without the next) and started again: it converges to exactly the rendered
objects, creates nothing twice, and leaves no duplicate owner reference, finalizer or beat entry."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp.web
import kmock
import pytest
import redis

from hack.kube_emulator import CONFIGMAPS, DEPLOYMENTS, PDBS, QW, Emulator, register_crd, write_kubeconfig
from tests.operator.harness import eventually
from tests.operator.helpers import create, differences, events, managed_objects, manifest, status
from tests.reliability.operator_process import OperatorProcess
from tests.reliability.support import text
from tests.support.redis_server import free_port

NAMES = [f"crash-{i}" for i in range(6)]
SCHEDULES = [{"name": "tick", "task": "tasks.tick", "every": "30s"}]


class SlowEmulator(Emulator):
    """Creates take a while, one at a time, as on a busy API server, so a kill lands in the middle of a
    reconcile however fast the operator issues them (it reconciles the QueueWorkers concurrently)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.creating = asyncio.Lock()

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        if request.action != kmock.action.CREATE or request.resource not in (DEPLOYMENTS, PDBS):
            return await super()._handle(request)
        async with self.creating:
            if request not in self._requests:  # the emulator keeps only the newest request: match this one
                self._requests.append(request)
            response = await super()._handle(request)
            await asyncio.sleep(0.4)  # the answer is slow (the object itself exists at once)
        return response


@pytest.fixture
async def slow_cluster(tmp_path: Path) -> AsyncIterator[tuple[Emulator, Path]]:
    async with SlowEmulator() as emulator, kmock.Server(emulator):
        register_crd(emulator)
        yield emulator, write_kubeconfig(tmp_path / "kubeconfig", str(emulator.url).rstrip("/"))


def worker_deployments(cluster: Emulator) -> list[str]:
    return [
        d["metadata"]["name"] for d in cluster.live(DEPLOYMENTS) if d["metadata"]["name"].startswith("crash-")
    ]


def created_once(cluster: Emulator) -> dict[str, int]:
    """Objects written more than once (mode off: nothing rewrites a created object)."""
    return {
        f"{kind}/{name}": cluster.versions(res, ns, name)
        for (kind, ns, name) in managed_objects(cluster)
        if kind != "ConfigMap"
        for res in [{"Deployment": DEPLOYMENTS, "PodDisruptionBudget": PDBS}[kind]]
        if cluster.versions(res, ns, name) != 1
    }


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_operator_killed_mid_reconcile_converges_without_duplicates(
    slow_cluster: tuple[Emulator, Path], redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    cluster, kubeconfig = slow_cluster
    env = {
        "QUEUEWORKER_REDIS_URL": redis_url,
        "QUEUEWORKER_AUTOSCALE_INTERVAL": "1",
        "QUEUEWORKER_DRIFT_INTERVAL": "3600",
        "QUEUEWORKER_METRICS_PORT": str(free_port()),
    }
    for name in NAMES:
        await create(
            cluster,
            manifest(
                name, routes=[f"{name}.*"], schedules=SCHEDULES, replicas=1, autoscaling={"mode": "off"}
            ),
        )
    first = OperatorProcess(kubeconfig, env, tmp_path / "operator-1.log").start()
    second = OperatorProcess(kubeconfig, env, tmp_path / "operator-2.log")
    try:
        await eventually(lambda: worker_deployments(cluster), timeout=60, interval=0.02)
        first.kill()
        partial = worker_deployments(cluster)
        half_done = [
            n
            for n in NAMES
            if cluster.read(DEPLOYMENTS, "default", f"{n}-worker")
            and not cluster.read(PDBS, "default", f"{n}-worker")
        ]
        assert len(partial) < len(NAMES), "the kill came after the whole reconcile"
        second.start()

        def converged() -> bool:
            problems = differences(cluster)
            for name in NAMES:
                if status(cluster, "default", name).get("observedGeneration") != 1:
                    problems.append(f"{name}: status not observed")
            assert not problems, problems
            return True

        await eventually(converged, timeout=90)
        await eventually(
            lambda: (
                sorted(text(k) for k in redis_client.keys("redbeat:qw/default/*"))
                == [f"redbeat:qw/default/{n}/tick" for n in NAMES]
            ),
            timeout=30,
        )
        entries = sorted(text(k) for k in redis_client.keys("redbeat:qw/default/*"))
        assert second.running()
    finally:
        first.stop()
        second.stop()

    live = managed_objects(cluster)
    rewritten = created_once(cluster)
    duplicate_refs = {
        f"{k[0]}/{k[2]}": refs
        for k, obj in live.items()
        for refs in [Counter(r["uid"] for r in obj["metadata"].get("ownerReferences") or [])]
        if max(refs.values(), default=1) > 1
    }
    finalizers = {
        n: (cluster.read(QW, "default", n) or {})["metadata"].get("finalizers") or [] for n in NAMES
    }
    reconcile_events: dict[str, Any] = {n: sorted(e["reason"] for e in events(cluster, n)) for n in NAMES}
    print(
        f"\n[reliability] operator SIGKILL mid-reconcile: {len(partial)}/{len(NAMES)} worker Deployments "
        f"existed at the kill ({len(half_done)} without their PDB); after restart {len(live)} objects, "
        f"rewritten={rewritten}, duplicate owner refs={duplicate_refs}, beat entries={len(entries)}, "
        f"Events per QueueWorker={reconcile_events}"
    )
    assert len([k for k in live if k[0] == "Deployment" and k[2].startswith("crash-")]) == len(NAMES)
    assert not rewritten, rewritten
    assert not duplicate_refs, duplicate_refs
    assert all(len(f) == len(set(f)) for f in finalizers.values()), finalizers
    assert len(entries) == len(set(entries)) == len(NAMES)
    assert all(len(reasons) <= 1 for reasons in reconcile_events.values()), reconcile_events
    routes = cluster.read(CONFIGMAPS, "default", "queueworker-routes")
    assert routes is not None
    assert sorted(r["name"] for r in routes["metadata"]["ownerReferences"]) == NAMES
