"""Throughput cost of the worker runtime: a make_app worker with every hook (publish stamps, redelivery
cap, metrics in multiprocess mode served on a port, heartbeats, probe state, malformed-message guard,
bounded shutdown) against a plain Celery worker with the same reliability settings (JSON, acks_late,
prefetch 1, reject on worker lost), on the same machine and the same Redis, in the same run.
Target: ratio >= 0.95.

The two workers (2 prefork processes each) run side by side, each draining its own preloaded queue of
no-op tasks, and are sampled over the same time windows while both still have a backlog: whatever else
loads the machine loads both alike, so the ratio of tasks done (and of CPU per task) stays meaningful on
a busy machine, where back-to-back runs differ by 2x. Rounds swap which worker starts first; the
median round is reported (ratio of tasks done; cpu_ratio = plain CPU per task / queueworker CPU per task).

    python -m bench.overhead            # prints a JSON summary; main() returns it
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
import uuid
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


def preload_fast(client: Any, template: bytes, queue: str, n: int) -> None:
    """LPUSH n copies of a published message, each with its own task id and delivery tag."""
    message = json.loads(template)
    pipe = client.pipeline(transaction=False)
    for i in range(n):
        task_id = str(uuid.uuid4())
        message["headers"]["id"] = message["headers"]["root_id"] = task_id
        message["properties"]["correlation_id"] = task_id
        message["properties"]["delivery_tag"] = str(uuid.uuid4())
        message["properties"]["delivery_info"]["routing_key"] = queue
        pipe.lpush(queue, json.dumps(message))
        if i % 1000 == 999:
            pipe.execute()
    pipe.execute()


def side_by_side(module_dir: Path, redis: RedisServer, n: int, first: str, window: float,
                 min_backlog: int = 300) -> dict[str, float]:
    """Tasks done and CPU seconds of each worker over the windows where both had a backlog."""
    client = redis.client()
    client.flushall()
    preload(redis.url, "template", 1)
    template = client.rpop("template")
    if not isinstance(template, bytes):
        raise RuntimeError("could not publish the template message")
    kinds = [first, "qw" if first == "plain" else "plain"]
    for kind in kinds:
        preload_fast(client, template, f"bench_{kind}", n)
    workers = {kind: CeleryWorker(f"{kind}bench", [f"bench_{kind}"], broker_url=redis.url,
                                  pythonpath=[module_dir], concurrency=2, loglevel="WARNING",
                                  heartbeat_interval=5.0, metrics_port=free_port() if kind == "qw" else None)
               for kind in kinds}
    done = {kind: 0.0 for kind in kinds}
    cpu = {kind: 0.0 for kind in kinds}
    try:
        for kind in kinds:
            workers[kind].start()
        deadline = time.monotonic() + 120
        while any(client.llen(f"bench_{k}") >= n - 50 for k in kinds):  # both consuming
            for kind, worker in workers.items():
                if not worker.running():
                    raise RuntimeError(f"{kind} worker exited:\n{worker.log()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("workers did not start consuming in 120 s")
            time.sleep(0.01)
        previous = {k: (client.llen(f"bench_{k}"), tree_cpu_seconds(workers[k].pid)) for k in kinds}
        while True:
            time.sleep(window)
            now = {k: (client.llen(f"bench_{k}"), tree_cpu_seconds(workers[k].pid)) for k in kinds}
            if any(depth < min_backlog for depth, _ in now.values()):
                break  # one of them is about to run dry: the comparison would no longer be fair
            for kind in kinds:
                done[kind] += previous[kind][0] - now[kind][0]
                cpu[kind] += now[kind][1] - previous[kind][1]
            previous = now
    finally:
        for worker in workers.values():
            worker.stop(timeout=15)
    return {"plain_done": done["plain"], "qw_done": done["qw"],
            "plain_cpu": cpu["plain"], "qw_cpu": cpu["qw"]}


def main(n: int = 6000, rounds: int = 4, window: float = 1.0) -> dict[str, Any]:
    module_dir = Path(tempfile.mkdtemp(prefix="qw-bench-"))
    (module_dir / "plainbench.py").write_text(PLAIN)
    (module_dir / "qwbench.py").write_text(QUEUEWORKER)
    runs = []
    with RedisServer() as redis:
        os.environ["QUEUEWORKER_BROKER_URL"] = redis.url
        for i in range(rounds):
            runs.append(side_by_side(module_dir, redis, n, "plain" if i % 2 == 0 else "qw", window))
    if any(not run["plain_done"] or not run["qw_done"] for run in runs):
        raise RuntimeError(f"a round had no window with both workers busy: {runs}")
    ratios = sorted(run["qw_done"] / run["plain_done"] for run in runs)
    cpu_ratios = sorted((run["plain_cpu"] / run["plain_done"]) / (run["qw_cpu"] / run["qw_done"])
                        for run in runs)
    ratio, cpu_ratio = statistics.median(ratios), statistics.median(cpu_ratios)
    total = {key: sum(run[key] for run in runs) for key in runs[0]}
    result = {
        "benchmark": "worker runtime overhead: make_app worker vs plain Celery, side by side "
                     "(1 worker x 2 prefork each, no-op tasks)",
        "tasks_compared": {"plain": int(total["plain_done"]), "queueworker": int(total["qw_done"])},
        "ratio": round(ratio, 3), "target": 0.95, "meets_target": ratio >= 0.95,
        "round_ratios": [round(r, 3) for r in ratios],
        "plain_cpu_s_per_1000": round(1000 * total["plain_cpu"] / total["plain_done"], 3),
        "queueworker_cpu_s_per_1000": round(1000 * total["qw_cpu"] / total["qw_done"], 3),
        "cpu_ratio": round(cpu_ratio, 3), "round_cpu_ratios": [round(r, 3) for r in cpu_ratios],
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
