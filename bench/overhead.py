"""Throughput cost of the worker runtime: a make_app worker with every hook (publish stamps, redelivery
cap, metrics in multiprocess mode served on a port, heartbeats, probe state, malformed-message guard)
against a plain Celery worker with the same reliability settings (JSON, acks_late, prefetch 1, reject on
worker lost), on the same machine, same Redis, in the same run. Target: ratio >= 0.95.

Each round preloads N no-op tasks into the queue, starts the worker (2 prefork processes) and times the
drain from the first task taken to an empty queue with nothing unacked; startup is not counted. Rounds
alternate plain / queueworker; the best round of each is compared.

    python -m bench.overhead            # prints a JSON summary; main() returns it
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [p for p in (str(REPO), str(REPO / "workers")) if p not in sys.path]

from tests.support.celery_worker import CeleryWorker  # noqa: E402
from tests.support.redis_server import RedisServer, free_port  # noqa: E402

PLAIN = '''
import os
from celery import Celery

app = Celery("plainbench", broker=os.environ["QUEUEWORKER_BROKER_URL"])
app.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"],
                task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1,
                task_ignore_result=True, worker_send_task_events=False)


@app.task(name="bench.noop")
def noop(i):
    return i
'''

QUEUEWORKER = '''
from queueworker import make_app

app = make_app("qwbench", task_ignore_result=True)


@app.task(name="bench.noop")
def noop(i):
    return i
'''


def preload(redis_url: str, queue: str, n: int) -> None:
    from celery import Celery
    from queueworker.runtime import stamps

    producer = Celery("bench-producer", broker=redis_url, set_as_current=False)
    producer.conf.update(task_serializer="json", accept_content=["json"])
    stamps.connect()  # both workers get the same (stamped) messages
    with producer.producer_or_acquire() as pub:
        for i in range(n):
            producer.send_task("bench.noop", args=[i], queue=queue, producer=pub)


def tree_cpu_seconds(pid: int) -> float:
    """user+system CPU of a process and its children (the prefork pool), from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def drain_rate(kind: str, module_dir: Path, redis: RedisServer, n: int) -> tuple[float, float]:
    """(tasks per second of wall time, CPU seconds of the worker's process tree per 1000 tasks)."""
    client = redis.client()
    client.flushall()
    queue = f"bench_{kind}"
    preload(redis.url, queue, n)
    env = {"QUEUEWORKER_HEARTBEAT_INTERVAL": "5"}
    worker = CeleryWorker(f"{kind}bench", [queue], broker_url=redis.url, pythonpath=[module_dir],
                          concurrency=2, loglevel="WARNING", env=env, heartbeat_interval=5.0,
                          metrics_port=free_port() if kind == "qw" else None)
    worker.start()
    try:
        while client.llen(queue) >= n:
            if not worker.running():
                raise RuntimeError(f"{kind} worker exited:\n{worker.log()[-2000:]}")
            time.sleep(0.002)
        started = time.perf_counter()
        cpu_start = tree_cpu_seconds(worker.pid)
        deadline = time.monotonic() + 120
        while client.llen(queue) or client.hlen("unacked"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{kind} worker did not drain {n} tasks in 120 s")
            time.sleep(0.005)
        elapsed = time.perf_counter() - started
        cpu = tree_cpu_seconds(worker.pid) - cpu_start
    finally:
        worker.stop(timeout=15)
    return n / elapsed, cpu * 1000 / n


def main(n: int = 2000, rounds: int = 2) -> dict[str, Any]:
    module_dir = Path(tempfile.mkdtemp(prefix="qw-bench-"))
    (module_dir / "plainbench.py").write_text(PLAIN)
    (module_dir / "qwbench.py").write_text(QUEUEWORKER)
    rates: dict[str, list[float]] = {"plain": [], "qw": []}
    cpus: dict[str, list[float]] = {"plain": [], "qw": []}
    with RedisServer() as redis:
        os.environ["QUEUEWORKER_BROKER_URL"] = redis.url
        for _ in range(rounds):
            for kind in ("plain", "qw"):
                rate, cpu = drain_rate(kind, module_dir, redis, n)
                rates[kind].append(rate)
                cpus[kind].append(cpu)
    plain, qw = max(rates["plain"]), max(rates["qw"])
    cpu_ratio = min(cpus["plain"]) / min(cpus["qw"])
    result = {
        "benchmark": "worker runtime overhead (1 worker x 2 prefork, no-op tasks)",
        "tasks_per_round": n, "rounds": rounds,
        "plain_celery_tasks_per_s": round(plain, 1), "queueworker_tasks_per_s": round(qw, 1),
        "ratio": round(qw / plain, 3), "target": 0.95, "meets_target": qw / plain >= 0.95,
        # CPU per task is far less sensitive to other load on the machine than wall-clock throughput
        "plain_cpu_s_per_1000": round(min(cpus["plain"]), 3),
        "queueworker_cpu_s_per_1000": round(min(cpus["qw"]), 3),
        "cpu_ratio": round(cpu_ratio, 3),
        "all_rounds": {k: [round(v, 1) for v in vs] for k, vs in rates.items()},
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
