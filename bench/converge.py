"""How long the operator takes to converge 500 QueueWorkers on a real API server.

`python -m bench.converge [N]` starts etcd and kube-apiserver (the test control plane,
tests/support/control_plane.py: binaries from hack/k8s/build.sh), creates N QueueWorkers (default 500, one
namespace, all with routes) as fast as the server accepts them, while the real operator (the same
handlers `kopf run -m queueworker_operator` registers) runs in this process against it, and a private
redis-server serves as the broker. It prints, as JSON, the seconds from the first create until every
QueueWorker has its worker Deployment, its PodDisruptionBudget and a status for its generation, and the
namespace's routes ConfigMap lists all of them.

The API server, etcd and the operator share this machine: the whole cluster's figure is bench/scale's.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.support import control_plane
from tests.support.kubeapi import CONFIGMAPS, DEPLOYMENTS, NAMESPACES, PDBS, QW, Api
from tests.support.operator_harness import environment, operator_settings, running_operator
from tests.support.redis_server import RedisServer

NAMESPACE = "bench"


def manifest(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "queueworker.dev/v1alpha1",
        "kind": "QueueWorker",
        "metadata": {"name": f"qw-{i:04d}", "namespace": NAMESPACE},
        "spec": {
            "app": "tasks:app",
            "queues": [f"queue_{i:04d}"],
            "routes": [f"tasks.q{i}.*"],
            "autoscaling": {"mode": "builtin", "minReplicas": 0, "maxReplicas": 5},
        },
    }


def converged(api: Api, n: int) -> int:
    """How many QueueWorkers are done (and n + 1 once the routes ConfigMap lists them all)."""
    names = {r: {o["metadata"]["name"] for o in api.live(r, NAMESPACE)} for r in (DEPLOYMENTS, PDBS)}
    done = 0
    for qw in api.live(QW, NAMESPACE):
        name, st = qw["metadata"]["name"], qw.get("status") or {}
        if (
            st.get("observedGeneration") == qw["metadata"].get("generation")
            and st.get("conditions")
            and f"{name}-worker" in names[DEPLOYMENTS]
            and f"{name}-worker" in names[PDBS]
        ):
            done += 1
    routes = api.read(CONFIGMAPS, NAMESPACE, "queueworker-routes")
    if done == n and routes and len(routes["metadata"].get("ownerReferences") or []) == n:
        done += 1
    return done


async def run(n: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="qw-bench-") as tmp, RedisServer() as redis_server:
        server = control_plane.start(Path(tmp) / "kube")
        try:
            api = server.api
            api.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
            env = operator_settings(
                redis_server.url, autoscale_interval=None, KUBECONFIG=str(server.kubeconfig)
            )
            with environment(env):
                async with running_operator([NAMESPACE]):
                    limit = asyncio.Semaphore(16)

                    async def create(i: int) -> None:
                        async with limit:
                            await asyncio.to_thread(api.create, QW, manifest(i))

                    started, cpu_started = time.monotonic(), time.process_time()
                    await asyncio.gather(*(create(i) for i in range(n)))
                    created = time.monotonic() - started
                    while (count := await asyncio.to_thread(converged, api, n)) < n + 1:
                        if os.environ.get("QW_BENCH_TRACE"):
                            print(f"{time.monotonic() - started:.1f}s {count}", file=sys.stderr)
                        await asyncio.sleep(0.5)
                    elapsed = time.monotonic() - started
                    cpu = time.process_time() - cpu_started
        finally:
            control_plane.stop(server)
    return {
        "queueworkers": n,
        "create_seconds": round(created, 2),
        "converge_seconds": round(elapsed, 2),
        "per_queueworker_ms": round(1000 * elapsed / n, 1),
        "process_cpu_seconds": round(cpu, 2),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def main(n: int = 500) -> dict[str, Any]:
    result = asyncio.run(run(n))
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)
