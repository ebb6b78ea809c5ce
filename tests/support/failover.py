"""Failover rounds on a Sentinel-managed Redis under a concurrent producer and consumer load, shared by the
suite (tests/redis/reliability/test_failover.py) and the benchmark (`python -m bench.failover`).

A round starts the load (a producer thread publishing tagged tasks, two real `celery worker`s consuming
them), injects one fault, waits until the broker is usable again, stops the producer and waits until every
acknowledged publish ran. Runs are recorded in a separate recorder Redis (HINCRBY per tag), so a broker
fault never loses the record of a run. Faults:

- kill: SIGKILL the primary, restart it after the failover (it rejoins as a replica);
- stop: SIGSTOP the primary past the failover, then SIGCONT (its clients' pending writes complete then:
  the split-brain window);
- shutdown: SHUTDOWN on the primary, restart it after the failover;
- cut: the sentinels fail over while the primary keeps running, and every client connection to it is
  killed (the worker must find the new primary through the sentinels: the celery#6348 class);
- sentinel: SIGKILL one sentinel, restart it;
- replica: SIGKILL one replica, restart it.

`stock=True` runs the same rounds with kombu's own sentinel transport (a plain Celery app, stock workers).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from celery import Celery
from queueworker import make_app

from tests.support.celery_worker import CeleryWorker
from tests.support.redis_server import RedisServer
from tests.support.reliability import COUNT_TASK, COUNTING_TASKS, runs
from tests.support.sentinel import SentinelCluster

FAULTS = ("kill", "stop", "shutdown", "cut", "sentinel", "replica")
QUEUE = "failover"

#: The stock baseline: kombu's sentinel transport as its documentation configures it.
STOCK_TASKS = (
    """
import os
import time

import redis
from celery import Celery

app = Celery("reltasks", broker=os.environ["QUEUEWORKER_BROKER_URL"])
app.conf.broker_transport_options = {
    "master_name": os.environ.get("QUEUEWORKER_SENTINEL_MASTER", "mymaster"),
    "sentinel_kwargs": {"password": os.environ.get("QUEUEWORKER_SENTINEL_PASSWORD")},
    "socket_timeout": 10,
    "socket_connect_timeout": 10,
}
app.conf.update(task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1,
                broker_connection_retry_on_startup=True, broker_connection_max_retries=None)
"""
    + COUNT_TASK
)


@dataclass
class Round:
    fault: str
    published: int = 0
    acknowledged: list[str] = field(default_factory=list)
    failed: int = 0
    lost: int = 0
    twice: int = 0
    unusable: float = 0.0
    worker_exits: int = 0

    def line(self) -> str:
        return (
            f"{self.fault:9s} published={self.published} acknowledged={len(self.acknowledged)} "
            f"failed={self.failed} lost={self.lost} ran-twice={self.twice} unusable={self.unusable:.2f}s "
            f"worker-exits={self.worker_exits}"
        )


class Producer(threading.Thread):
    """Publishes tagged tasks at `rate` per second; records which publishes returned (acknowledged)."""

    def __init__(self, app: Celery, prefix: str, rate: float) -> None:
        super().__init__(name="failover-producer", daemon=True)
        self.app, self.prefix, self.pause = app, prefix, 1.0 / rate
        self.stopping = threading.Event()
        self.published = 0
        self.acknowledged: list[str] = []
        self.acked_at: list[float] = []
        self.failed = 0

    def run(self) -> None:
        while not self.stopping.is_set():
            tag = f"{self.prefix}-{self.published}"
            self.published += 1
            try:
                self.app.send_task("reltasks.count", args=[tag], queue=QUEUE)
            except Exception:  # a publish that failed is not acknowledged: it may or may not run
                self.failed += 1
            else:
                self.acknowledged.append(tag)
                self.acked_at.append(time.monotonic())
            self.stopping.wait(self.pause)

    def longest_gap(self, since: float) -> float:
        """The longest time without an acknowledged publish after `since` (the broker unusable)."""
        times = [since, *[t for t in self.acked_at if t >= since]]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


class Failover:
    def __init__(self, workdir: Path | None = None, stock: bool = False, rate: float = 40.0) -> None:
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="qw-failover-"))
        self.stock = stock
        self.rate = rate
        self.recorder = RedisServer(workdir=self.dir / "recorder")
        self.cluster = SentinelCluster(replicas=2, workdir=self.dir / "cluster")
        self.workers: list[CeleryWorker] = []
        self.rounds: list[Round] = []
        self.app: Celery | None = None

    # -- setup ----------------------------------------------------------------------------------------
    def start(self) -> Failover:
        self.recorder.dir.mkdir(parents=True, exist_ok=True)
        self.recorder.start()
        self.cluster.start()
        modules = self.dir / "modules"
        modules.mkdir(parents=True, exist_ok=True)
        (modules / "reltasks.py").write_text(STOCK_TASKS if self.stock else COUNTING_TASKS)
        self.app = self.producer_app()
        self.workers = [self.new_worker(i) for i in range(2)]
        return self

    def env(self) -> dict[str, str]:
        return {**self.cluster.env, "QW_RECORDER_URL": self.recorder.url}

    def producer_app(self) -> Celery:
        os.environ.update(self.cluster.env)
        if self.stock:
            app = Celery("failover-stock-producer", broker=self.cluster.url, set_as_current=False)
            app.conf.broker_transport_options = {
                "master_name": self.cluster.master,
                "sentinel_kwargs": {"password": self.cluster.sentinel_password},
            }
            return app
        os.environ["QUEUEWORKER_BROKER_URL"] = self.cluster.url
        return make_app("failover-producer")

    def new_worker(self, index: int) -> CeleryWorker:
        worker = CeleryWorker(
            "reltasks",
            [QUEUE],
            broker_url=self.cluster.url,
            env=self.env(),
            pythonpath=[self.dir / "modules"],
            concurrency=2,
            workdir=self.dir / f"worker{index}-{len(self.rounds)}",
            ready_via="log" if self.stock else "heartbeat",
        )
        worker.start()
        worker.wait_ready(timeout=90)
        return worker

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop(timeout=10)
        self.cluster.stop()
        self.recorder.stop()

    # -- faults ---------------------------------------------------------------------------------------
    def inject(self, fault: str) -> None:
        """Inject `fault` and return once the broker has a writable primary again."""
        c = self.cluster
        old = c.primary()
        if fault == "kill":
            old.stop(kill=True)
            c.wait_failover(old.port)
            old.start()
        elif fault == "stop":
            assert old.proc is not None
            old.proc.send_signal(signal.SIGSTOP)
            try:
                c.wait_failover(old.port)
                time.sleep(1.0)  # frozen a little past the failover
            finally:
                old.proc.send_signal(signal.SIGCONT)
        elif fault == "shutdown":
            with contextlib.suppress(Exception):
                old.client().shutdown()
            assert old.proc is not None
            old.proc.wait(timeout=30)
            old.proc = None
            c.wait_failover(old.port)
            old.start()
        elif fault == "cut":
            c.sentinels[0].client().execute_command("SENTINEL", "FAILOVER", c.master)
            c.wait_failover(old.port)
            with contextlib.suppress(Exception):
                old.client().client_kill_filter(_type="normal", skipme=True)
        elif fault == "sentinel":
            lost = c.sentinels[-1]
            lost.stop(kill=True)
            time.sleep(3.0)
            lost.start()
        elif fault == "replica":
            replica = c.replicas()[-1]
            replica.stop(kill=True)
            time.sleep(3.0)
            replica.start()
        else:
            raise ValueError(f"unknown fault {fault!r}")

    def settle(self, timeout: float = 60.0) -> None:
        """Until every node is back in its role and the sentinels agree (the next round starts clean)."""
        primary = self.cluster.primary()
        with self.cluster.syncing_at_once(primary):  # a rejoining node's full sync: not part of the fault
            self.cluster.wait_replicas(primary, 2, timeout=timeout)
        self.cluster.wait_sentinels_agree(timeout=timeout)

    # -- a round --------------------------------------------------------------------------------------
    def run_round(self, fault: str, number: int, log: Callable[[str], Any] = print) -> Round:
        assert self.app is not None
        producer = Producer(self.app, f"{'stock' if self.stock else 'qw'}-{fault}-{number}", self.rate)
        producer.start()
        time.sleep(2.0)
        began = time.monotonic()
        self.inject(fault)
        time.sleep(3.0)  # the load goes on past the recovery
        producer.stopping.set()
        producer.join(timeout=120)
        result = Round(fault, producer.published, producer.acknowledged, producer.failed)
        result.unusable = producer.longest_gap(began)
        deadline = time.monotonic() + 90
        wanted = set(producer.acknowledged)
        done: dict[str, int] = {}
        while time.monotonic() < deadline:
            done = runs(self.recorder.client())
            if wanted <= set(done):
                break
            time.sleep(0.5)
        result.lost = sum(1 for t in wanted if done.get(t, 0) == 0)
        prefix = producer.prefix + "-"
        result.twice = sum(1 for t, n in done.items() if t.startswith(prefix) and n > 1)
        for i, worker in enumerate(self.workers):
            if not worker.running():
                result.worker_exits += 1
                self.workers[i] = self.new_worker(i)
        self.settle()
        self.rounds.append(result)
        log(f"[{'stock' if self.stock else 'queueworker'}] round {number} {result.line()}")
        return result


def summary(rounds: list[Round]) -> dict[str, Any]:
    """Per fault: published, acknowledged, ran, lost among acknowledged, ran twice, unusable p50/p99."""
    out: dict[str, Any] = {}
    for fault in dict.fromkeys(r.fault for r in rounds):
        mine = [r for r in rounds if r.fault == fault]
        gaps = sorted(r.unusable for r in mine)
        acked = sum(len(r.acknowledged) for r in mine)
        out[fault] = {
            "rounds": len(mine),
            "published": sum(r.published for r in mine),
            "acknowledged": acked,
            "ran": acked - sum(r.lost for r in mine),
            "lost_acknowledged": sum(r.lost for r in mine),
            "ran_twice": sum(r.twice for r in mine),
            "worker_exits": sum(r.worker_exits for r in mine),
            "unusable_p50_s": round(statistics.median(gaps), 2),
            "unusable_p99_s": round(gaps[min(len(gaps) - 1, int(0.99 * len(gaps)))], 2),
        }
    return out
