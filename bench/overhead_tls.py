"""TLS's cost per task, for bench.overhead: the same make_app worker (atomic fetch, every hook) draining
no-op tasks from a TLS-only Redis and from a plaintext one, side by side and sampled over the same windows
(so whatever else loads the machine loads both), rounds swapping which starts first; then instructions per
task of each under callgrind (solo pool), which a busy machine cannot disturb. Ratios are plaintext / TLS
for cost (instructions, CPU per task) and TLS / plaintext for throughput: 1.0 means TLS costs nothing.

    python -m bench.overhead_tls        # TLS figures only
"""

from __future__ import annotations

import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.overhead import (
    LARGE,
    QUEUEWORKER,
    SMALL,
    callgrind_instructions,
    preload_fast,
    published_template,
    tree_cpu_seconds,
)
from tests.support.celery_worker import CeleryWorker
from tests.support.redis_server import RedisServer
from tests.support.tls import make_tls

MODES = ("plain", "tls")


def one_round(module_dir: Path, servers: dict[str, RedisServer], n: int, first: str, window: float) -> dict:
    order = [first, *(m for m in MODES if m != first)]
    template = published_template(servers["plain"])
    clients = {m: servers[m].client() for m in MODES}
    for mode in order:
        clients[mode].flushall()
        preload_fast(clients[mode], template, "bench", n)
    workers = {
        m: CeleryWorker(
            "qwbench",
            ["bench"],
            broker_url=servers[m].url,
            pythonpath=[module_dir],
            concurrency=2,
            loglevel="WARNING",
            env={"QUEUEWORKER_METRICS_FLUSH_INTERVAL": "1"},
            heartbeat_interval=5.0,
        )
        for m in order
    }
    done = dict.fromkeys(MODES, 0.0)
    cpu = dict.fromkeys(MODES, 0.0)
    try:
        for mode in order:
            workers[mode].start()
        deadline = time.monotonic() + 120
        while any(clients[m].llen("bench") >= n - 50 for m in MODES):
            if time.monotonic() > deadline or not all(w.running() for w in workers.values()):
                raise RuntimeError("workers did not start consuming:\n" + workers["tls"].log()[-2000:])
            time.sleep(0.01)
        previous = {m: (clients[m].llen("bench"), tree_cpu_seconds(workers[m].pid)) for m in MODES}
        while True:
            time.sleep(window)
            now = {m: (clients[m].llen("bench"), tree_cpu_seconds(workers[m].pid)) for m in MODES}
            if any(depth < 300 for depth, _ in now.values()):
                break
            for m in MODES:
                done[m] += previous[m][0] - now[m][0]
                cpu[m] += now[m][1] - previous[m][1]
            previous = now
    finally:
        for worker in workers.values():
            worker.stop(timeout=15)
    return {"done": done, "cpu": cpu}


def tls_cost(module_dir: Path, n: int = 8000, rounds: int = 4, window: float = 1.0) -> dict[str, Any]:
    tls = make_tls()
    runs = []
    with RedisServer() as plain, RedisServer(tls=tls) as secure:
        servers = {"plain": plain, "tls": secure}
        for i in range(rounds):
            runs.append(one_round(module_dir, servers, n, MODES[i % 2], window))
    if any(not run["done"][m] for run in runs for m in MODES):
        raise RuntimeError(f"a round had no window with both workers busy: {runs}")
    result: dict[str, Any] = {
        "throughput_ratio": round(statistics.median(r["done"]["tls"] / r["done"]["plain"] for r in runs), 3),
        "cpu_ratio": round(
            statistics.median(
                (r["cpu"]["plain"] / r["done"]["plain"]) / (r["cpu"]["tls"] / r["done"]["tls"]) for r in runs
            ),
            3,
        ),
        "tasks_compared": {m: int(sum(r["done"][m] for r in runs)) for m in MODES},
    }
    if shutil.which("valgrind") is None:
        result["instructions"] = {"skipped": "valgrind not found (apt-get install valgrind)"}
        return result
    counts = {
        (mode, size): callgrind_instructions(module_dir, "qw", size, tls=tls if mode == "tls" else None)
        for mode in MODES
        for size in (SMALL, LARGE)
    }
    per_task = {m: (counts[(m, LARGE)] - counts[(m, SMALL)]) / (LARGE - SMALL) for m in MODES}
    result["instructions"] = {
        "plain_per_task": round(per_task["plain"]),
        "tls_per_task": round(per_task["tls"]),
        "instruction_ratio": round(per_task["plain"] / per_task["tls"], 3),
    }
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    module_dir = Path(tempfile.mkdtemp(prefix="qw-bench-tls-"))
    (module_dir / "qwbench.py").write_text(QUEUEWORKER)
    result = {
        "benchmark": "TLS cost per task: make_app worker on a TLS-only Redis vs plaintext",
        **tls_cost(module_dir),
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
