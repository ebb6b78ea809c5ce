"""The operator SIGKILLed in the middle of reconciling (some QueueWorkers' objects created, others not,
one object of a QueueWorker without the next) and started again: it converges to exactly the rendered
objects, creates nothing twice, and leaves no duplicate owner reference, finalizer or beat entry."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.support.control_plane import Server
from tests.support.kubeapi import CONFIGMAPS, DEPLOYMENTS, PDBS, QW, Api
from tests.support.operator_harness import eventually, operator_settings
from tests.support.operator_helpers import create, differences, events, managed_objects, manifest, status
from tests.support.operator_process import OperatorProcess
from tests.support.reliability import text
from tests.support.slow_api import SlowApi

NAMES = [f"crash-{i}" for i in range(6)]
SCHEDULES = [{"name": "tick", "task": "tasks.tick", "every": "30s"}]


def worker_deployments(kube: Api, ns: str) -> list[str]:
    return [
        d["metadata"]["name"]
        for d in kube.live(DEPLOYMENTS, ns)
        if d["metadata"]["name"].startswith("crash-")
    ]


def created_once(kube: Api, ns: str) -> dict[str, int]:
    """Objects whose spec was written more than once (mode off: nothing rewrites a created object)."""
    return {
        f"{kind}/{name}": obj["metadata"]["generation"]
        for (kind, _, name), obj in managed_objects(kube, ns).items()
        if kind != "ConfigMap" and obj["metadata"]["generation"] != 1
    }


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_operator_killed_mid_reconcile_converges_without_duplicates(
    kube_server: Server, ns: str, redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    kube = kube_server.api
    slow = await SlowApi(kube_server).__aenter__()
    kubeconfig = slow.kubeconfig(tmp_path / "kubeconfig")
    env = operator_settings(redis_url)
    for name in NAMES:
        create(
            kube,
            manifest(
                name, ns, routes=[f"{name}.*"], schedules=SCHEDULES, replicas=1, autoscaling={"mode": "off"}
            ),
        )
    first = OperatorProcess(kubeconfig, env, tmp_path / "operator-1.log", namespaces=[ns]).start()
    second = OperatorProcess(kubeconfig, env, tmp_path / "operator-2.log", namespaces=[ns])
    try:
        await eventually(lambda: worker_deployments(kube, ns), timeout=60, interval=0.02)
        first.kill()
        partial = worker_deployments(kube, ns)
        half_done = [
            n
            for n in NAMES
            if kube.read(DEPLOYMENTS, ns, f"{n}-worker") and not kube.read(PDBS, ns, f"{n}-worker")
        ]
        assert len(partial) < len(NAMES), "the kill came after the whole reconcile"
        second.start()

        def converged() -> bool:
            problems = differences(kube, ns)
            for name in NAMES:
                if status(kube, ns, name).get("observedGeneration") != 1:
                    problems.append(f"{name}: status not observed")
            assert not problems, problems
            return True

        await eventually(converged, timeout=90)
        await eventually(
            lambda: (
                sorted(text(k) for k in redis_client.keys(f"redbeat:qw/{ns}/*"))
                == [f"redbeat:qw/{ns}/{n}/tick" for n in NAMES]
            ),
            timeout=30,
        )
        entries = sorted(text(k) for k in redis_client.keys(f"redbeat:qw/{ns}/*"))
        assert second.running()
    finally:
        first.stop()
        second.stop()
        await slow.__aexit__(None, None, None)

    live = managed_objects(kube, ns)
    rewritten = created_once(kube, ns)
    duplicate_refs = {
        f"{k[0]}/{k[2]}": refs
        for k, obj in live.items()
        for refs in [Counter(r["uid"] for r in obj["metadata"].get("ownerReferences") or [])]
        if max(refs.values(), default=1) > 1
    }
    finalizers = {n: (kube.read(QW, ns, n) or {})["metadata"].get("finalizers") or [] for n in NAMES}
    reconcile_events: dict[str, Any] = {n: sorted(e["reason"] for e in events(kube, ns, n)) for n in NAMES}
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
    routes = kube.read(CONFIGMAPS, ns, "queueworker-routes")
    assert routes is not None
    assert sorted(r["name"] for r in routes["metadata"]["ownerReferences"]) == NAMES
