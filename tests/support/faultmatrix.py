"""The broker/worker fault matrix, shared by tests/redis/reliability/test_fault_matrix.py (a few rounds) and
bench/faults.py (10+ rounds per fault).

Real processes only: a broker redis-server with AOF, reached by the workers through a TCP proxy the
harness can cut; two make_app workers (`celery worker`, pool and concurrency chosen) counting each run in a
separate recorder Redis; a producer thread publishing under every fault (a publish that raised is not
counted: it may or may not have reached Redis). Each round: load starts, the fault hits mid-load, the load
ends, then every published task must have run (lost = 0), runs beyond the first are counted (run-twice),
and every worker not killed on purpose must still be running without an "Unrecoverable error".
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis

from tests.support.celery_worker import CeleryWorker
from tests.support.redis_server import RedisServer
from tests.support.reliability import Tally, producer, tally, wait_all_ran, write_counting_module
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import wait_for

REDIS_FAULTS = (
    "redis-sigstop",
    "redis-kill-aof-always",
    "redis-kill-aof-everysec",
    "redis-shutdown",
    "connection-cut",
)
WORKER_FAULTS = ("worker-sigkill", "worker-sigterm")
FAULTS = REDIS_FAULTS + WORKER_FAULTS
QUEUE = "matrix"
UNRECOVERABLE = "Unrecoverable error"


@dataclass
class Round:
    fault: str
    number: int
    tally: Tally
    held_at_fault: int
    all_ran: bool
    workers_ok: bool
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        alive = "workers alive" if self.workers_ok else "A WORKER DIED"
        extra = f"; {'; '.join(self.notes)}" if self.notes else ""
        return (
            f"{self.tally.line(f'{self.fault} round {self.number}')} (held at fault: "
            f"{self.held_at_fault}; {alive}{extra})"
        )


class Load(threading.Thread):
    """Publishes `rate` tasks a second until stopped; only publishes that returned are counted."""

    def __init__(self, broker_url: str, prefix: str, rate: float, task_seconds: float) -> None:
        super().__init__(name=f"load-{prefix}", daemon=True)
        self.app = producer(broker_url, main=f"matrix-{prefix}")
        self.prefix, self.rate, self.task_seconds = prefix, rate, task_seconds
        self.published: list[str] = []
        self.failed = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stopping.is_set():
            tag = f"{self.prefix}-{n:05d}"
            n += 1
            try:
                self.app.send_task("reltasks.count", args=[tag, self.task_seconds], queue=QUEUE, retry=False)
                self.published.append(tag)
            except Exception:  # the broker is down: this tag may or may not be queued; it is not counted
                self.failed += 1
                time.sleep(0.2)
            time.sleep(1.0 / self.rate)

    def stop(self) -> None:
        self.stopping.set()
        self.join(60)


class Matrix:
    def __init__(
        self,
        workdir: Path,
        *,
        pool: str = "prefork",
        concurrency: int = 2,
        stop_seconds: float = 12.0,
        rate: float = 20.0,
        load_seconds: float = 6.0,
        task_seconds: float = 0.1,
        settle_timeout: float = 120.0,
    ) -> None:
        self.dir = workdir
        self.pool, self.concurrency = pool, concurrency
        self.stop_seconds, self.rate, self.load_seconds = stop_seconds, rate, load_seconds
        self.task_seconds, self.settle_timeout = task_seconds, settle_timeout
        (workdir / "broker").mkdir(parents=True, exist_ok=True)
        self.broker = RedisServer(workdir=workdir / "broker", appendonly="yes", appendfsync="always")
        self.recorder_server = RedisServer()
        self.proxy: TcpProxy | None = None
        self.tasks = write_counting_module(workdir / "tasks")
        self.workers: list[CeleryWorker] = []
        self.retired: list[CeleryWorker] = []
        self.rounds: list[Round] = []
        self.started = 0

    # -- processes ---------------------------------------------------------------------------------
    def start(self) -> Matrix:
        self.broker.start()
        self.recorder_server.start()
        self.proxy = TcpProxy(self.broker.port).start()
        self.recorder = self.recorder_server.client()
        self.recorder.flushall()
        self.workers = [self.new_worker(), self.new_worker()]
        for worker in self.workers:
            worker.start()
        for worker in self.workers:
            worker.wait_ready(90)
        return self

    def new_worker(self) -> CeleryWorker:
        assert self.proxy is not None
        self.started += 1
        env = {
            "QW_RECORDER_URL": self.recorder_server.url,
            "QUEUEWORKER_BROKER_SOCKET_TIMEOUT": "3",
            "QUEUEWORKER_HEARTBEAT_TTL": "6",
            "QUEUEWORKER_SOFT_SHUTDOWN_TIMEOUT": "3",
        }
        return CeleryWorker(
            "reltasks",
            [QUEUE],
            broker_url=self.proxy.url(),
            pythonpath=[self.tasks],
            env=env,
            concurrency=self.concurrency,
            pool=self.pool,
            workdir=self.dir / f"worker-{self.started}",
        )

    def stop(self) -> None:
        for worker in self.workers + self.retired:
            worker.stop(timeout=10)
        if self.broker.proc is not None:
            os.kill(self.broker.proc.pid, signal.SIGCONT)
        if self.proxy is not None:
            self.proxy.stop()
        self.broker.stop()
        self.recorder_server.stop()

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.broker.port, socket_timeout=3)

    # -- faults ------------------------------------------------------------------------------------
    def restart_broker(self, how: Callable[[], None]) -> None:
        assert self.broker.proc is not None
        how()
        self.broker.proc.wait(timeout=30)
        self.broker.proc = None
        self.broker.start()

    def inject(self, fault: str) -> list[str]:
        notes: list[str] = []
        proc = self.broker.proc
        assert proc is not None and self.proxy is not None
        if fault == "redis-sigstop":
            os.kill(proc.pid, signal.SIGSTOP)
            time.sleep(self.stop_seconds)
            os.kill(proc.pid, signal.SIGCONT)
        elif fault.startswith("redis-kill-aof-"):
            self.client().config_set("appendfsync", fault.rsplit("-", 1)[1])
            self.restart_broker(proc.kill)
        elif fault == "redis-shutdown":

            def shutdown() -> None:
                with contextlib.suppress(redis.ConnectionError):  # SHUTDOWN closes its own connection
                    self.client().shutdown()

            self.restart_broker(shutdown)
        elif fault == "connection-cut":
            cut = 0
            for _ in range(5):
                cut += self.proxy.cut()
                time.sleep(0.7)
            notes.append(f"{cut} connections cut")
        elif fault in WORKER_FAULTS:
            victim = self.workers[0]
            if fault == "worker-sigkill":
                victim.kill()
            else:
                victim.terminate()
                code = victim.wait(timeout=30)
                notes.append(f"SIGTERM exit code {code}")
                if code != 0:
                    notes.append("SIGTERM DID NOT EXIT CLEANLY")
            self.retired.append(victim)
            replacement = self.new_worker().start()
            self.workers[0] = replacement
            replacement.wait_ready(90)
        else:
            raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
        return notes

    def workers_ok(self) -> bool:
        return all(w.running() and UNRECOVERABLE not in w.log() for w in self.workers) and all(
            UNRECOVERABLE not in w.log() for w in self.retired
        )

    def run_round(self, fault: str, number: int) -> Round:
        load = Load(self.broker.url, f"{fault}-{number}", self.rate, self.task_seconds)
        load.start()
        wait_for(lambda: len(load.published) >= self.rate, 30, message="the load to be under way")
        published_before = len(load.published)
        try:
            held = int(self.client().hlen("queueworker:held"))
        except redis.RedisError:
            held = -1
        notes = self.inject(fault)
        # the load goes on until load_seconds of it have been published past the fault
        wait_for(
            lambda: len(load.published) >= published_before + self.rate * self.load_seconds / 2,
            self.settle_timeout,
            interval=0.2,
            message="the load to resume after the fault",
        )
        load.stop()
        all_ran = wait_all_ran(load.published, self.recorder, self.settle_timeout)
        time.sleep(1.0)  # a duplicate run would show up now rather than in the next round
        if load.failed:
            notes.append(f"{load.failed} publishes refused during the fault (not counted)")
        result = Round(
            fault, number, tally(load.published, self.recorder), held, all_ran, self.workers_ok(), notes
        )
        self.rounds.append(result)
        print(f"[faults] pool={self.pool} {result.line()}", flush=True)
        return result

    def logs(self) -> str:
        return "\n".join(f"--- {w.hostname} ---\n{w.log()[-3000:]}" for w in self.workers + self.retired)
