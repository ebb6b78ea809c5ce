"""How long the operator takes to converge 500 QueueWorkers on the API emulator.

`python -m bench.converge [N]` creates N QueueWorkers (default 500, one namespace, all with routes) through
the emulator's HTTP API as fast as it accepts them, while the real operator (the same handlers
`kopf run -m queueworker_operator` registers) runs in this process against it, and a private redis-server
serves as the broker. It prints, as JSON, the seconds from the first create until every QueueWorker has
its worker Deployment, its PodDisruptionBudget and a status for its generation, and the namespace's
routes ConfigMap lists all of them.

The emulator and the operator share this process (one core): the figure is an upper bound of the
operator's own cost on a real API server.
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

import kmock

from hack.kube_emulator import CONFIGMAPS, DEPLOYMENTS, PDBS, QW, Emulator, register_crd, write_kubeconfig
from tests.operator.harness import environment, running_operator
from tests.support.redis_server import RedisServer, free_port

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


def converged(emulator: Emulator, n: int) -> int:
    """How many QueueWorkers are done (and n + 1 once the routes ConfigMap lists them all)."""
    seen: dict[Any, dict[str, dict[str, Any]]] = {QW: {}, DEPLOYMENTS: {}, PDBS: {}, CONFIGMAPS: {}}
    for (resource, namespace, name), obj in list(emulator.objects.items()):
        if namespace == NAMESPACE and resource in seen and not obj.deleted:
            seen[resource][name] = obj.raw  # read only: no copies
    done = 0
    for name, qw in seen[QW].items():
        st = qw.get("status") or {}
        if (
            st.get("observedGeneration") == qw["metadata"].get("generation")
            and st.get("conditions")
            and f"{name}-worker" in seen[DEPLOYMENTS]
            and f"{name}-worker" in seen[PDBS]
        ):
            done += 1
    routes = seen[CONFIGMAPS].get("queueworker-routes")
    if done == n and routes and len(routes["metadata"].get("ownerReferences") or []) == n:
        done += 1
    return done


async def run(n: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="qw-bench-") as tmp, RedisServer() as redis_server:
        async with Emulator() as emulator, kmock.Server(emulator):
            register_crd(emulator)
            kubeconfig = write_kubeconfig(Path(tmp) / "kubeconfig", str(emulator.url).rstrip("/"))
            env = {
                "KUBECONFIG": str(kubeconfig),
                "QUEUEWORKER_REDIS_URL": redis_server.url,
                "QUEUEWORKER_METRICS_PORT": str(free_port()),
                "QUEUEWORKER_DRIFT_INTERVAL": "3600",
            }
            with environment(env):
                async with running_operator():
                    path = f"/apis/queueworker.dev/v1alpha1/namespaces/{NAMESPACE}/queueworkers"
                    limit = asyncio.Semaphore(16)

                    async def create(i: int) -> None:
                        async with limit:
                            response = await emulator.post(path, json=manifest(i))
                            assert response.status < 300, await response.text()

                    started, cpu_started = time.monotonic(), time.process_time()
                    await asyncio.gather(*(create(i) for i in range(n)))
                    created = time.monotonic() - started
                    while (count := converged(emulator, n)) < n + 1:
                        if os.environ.get("QW_BENCH_TRACE"):
                            print(f"{time.monotonic() - started:.1f}s {count}", file=sys.stderr)
                        await asyncio.sleep(0.5)
                    elapsed = time.monotonic() - started
                    cpu = time.process_time() - cpu_started
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
