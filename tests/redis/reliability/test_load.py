"""Load: 10,000 tasks across 20 queues on 8 real workers (each queue consumed by two of them) complete with
nothing lost. Throughput and the memory (RSS) of each component are measured and printed, not asserted:
they depend on the machine."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis

from tests.support.celery_worker import REPO, WORKERS, CeleryWorker
from tests.support.redis_server import RedisServer, free_port
from tests.support.reliability import producer, report, runs, tree_rss_kib, wait_all_ran
from tests.support.waiting import wait_for

TASKS, QUEUES, WORKERS_N, PUBLISHERS = 10_000, 20, 8, 8


class PeakRss:
    """Peak RSS per component, sampled from /proc in a thread."""

    def __init__(self, pids: dict[str, tuple[int, bool]]) -> None:
        self.pids = pids  # name -> (pid, count descendants separately)
        self.peak: dict[str, tuple[int, int]] = dict.fromkeys(pids, (0, 0))
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.is_set():
            for name, (pid, _) in self.pids.items():
                main, kids = tree_rss_kib(pid)
                old = self.peak[name]
                self.peak[name] = (max(old[0], main), max(old[1], kids))
            self.stop.wait(0.5)

    def __enter__(self) -> PeakRss:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_ten_thousand_tasks_twenty_queues_eight_workers(
    tmp_path: Path, counting_tasks: Path, recorder_server: RedisServer, recorder: redis.Redis
) -> None:
    (tmp_path / "broker").mkdir()
    broker = RedisServer(
        workdir=tmp_path / "broker", appendonly="yes", appendfsync="everysec", maxmemory_policy="noeviction"
    ).start()
    queues = [f"load{i:02d}" for i in range(QUEUES)]
    env = {"QW_RECORDER_URL": recorder_server.url}
    workers = [
        CeleryWorker(
            "reltasks",
            [queues[(i * 5 + k) % QUEUES] for k in range(5)],
            broker_url=broker.url,
            pythonpath=[counting_tasks],
            env=env,
            concurrency=2,
            loglevel="WARNING",
            workdir=tmp_path / f"worker{i}",
        )
        for i in range(WORKERS_N)
    ]
    port = free_port()
    exporter_env = {
        **os.environ,
        "QUEUEWORKER_REDIS_URL": broker.url,
        "PYTHONPATH": os.pathsep.join([str(REPO), str(WORKERS)]),
    }
    exporter_log = tmp_path / "exporter.log"
    with exporter_log.open("wb") as log:  # the exporter keeps its own copy of the descriptor
        exporter = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "queueworker.cli",
                "exporter",
                "--port",
                str(port),
                "--address",
                "127.0.0.1",
                "--queues",
                *queues,
            ],
            env=exporter_env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        # The exporter serves before the workers start: their connections take ephemeral ports, one of
        # which could otherwise be the exporter's before it binds it.
        scrape = f"http://127.0.0.1:{port}/metrics"
        wait_for(
            lambda: b"queueworker_broker_up 1" in urllib.request.urlopen(scrape, timeout=5).read(),
            60,
            interval=0.2,
            message="the exporter",
            tolerate=(OSError,),
            diagnose=lambda: "" if exporter.poll() is None else exporter_log.read_text()[-2000:],
        )
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.wait_ready(timeout=120)
        assert broker.proc is not None
        pids = {f"worker{i}": (w.pid, True) for i, w in enumerate(workers)}
        pids |= {"redis": (broker.proc.pid, False), "exporter": (exporter.pid, False)}
        app = producer(broker.url)
        with PeakRss(pids) as memory:
            started = time.monotonic()
            published = [f"t{n:05d}" for n in range(TASKS)]

            def publish_share(first: int) -> None:  # 8 producer threads, as a web app's would
                for n in range(first, TASKS, PUBLISHERS):
                    app.send_task("reltasks.count", args=[published[n]], queue=queues[n % QUEUES])

            with ThreadPoolExecutor(PUBLISHERS) as pool:
                list(pool.map(publish_share, range(PUBLISHERS)))
            published_in = time.monotonic() - started
            scrapes = 0
            deadline = time.monotonic() + 150
            while len(runs(recorder)) < TASKS and time.monotonic() < deadline:
                urllib.request.urlopen(scrape, timeout=5).read()  # scraped as Prometheus would, under load
                scrapes += 1
                time.sleep(1.0)
            all_ran = wait_all_ran(published, recorder, timeout=30)
            elapsed = time.monotonic() - started
        result = report(
            f"load {TASKS} tasks / {QUEUES} queues / {WORKERS_N} workers x 2 processes", published, recorder
        )
        lines = [
            f"published in {published_in:.1f}s ({TASKS / published_in:.0f}/s); all completed in "
            f"{elapsed:.1f}s: {TASKS / elapsed:.0f} tasks/s end to end ({scrapes} exporter scrapes; "
            f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f})"
        ]
        for name, (main, kids) in memory.peak.items():
            extra = f" + pool children {kids / 1024:.0f} MiB" if pids[name][1] else ""
            lines.append(f"peak RSS {name}: {main / 1024:.0f} MiB{extra}")
        used = broker.client().info("memory")
        lines.append(f"redis used_memory_peak {int(used['used_memory_peak']) / 2**20:.1f} MiB")
        print("[reliability] " + "\n[reliability] ".join(lines))
        assert all_ran and result.lost == 0 and result.completed == TASKS, result
        assert result.twice == 0, "no worker died, so nothing may run twice"
        assert all(w.running() for w in workers)
        assert sum(broker.client().llen(q) for q in queues) == 0
        wait_for(lambda: broker.client().hlen("unacked") == 0, 20, message="unacked drained")
    finally:
        exporter.terminate()
        exporter.wait(timeout=10)
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.stop(timeout=20)
        broker.stop()
