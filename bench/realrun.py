"""A time-compressed real run through local mode, against the autoscaling simulation (bench/autoscale).

One seeded trace (a quiet queue with one burst) is played in real time into `qw up`: real Redis (the
embedded one), real `celery worker` processes started and stopped by the builtin policy, tasks that sleep
their sampled service time and record when they started. The same arrivals and service times, the same
policy configuration and tick interval, and the worker start-up delay measured in this run then go through
the simulation. The run checks that the simulation's wait percentiles and cost (worker-seconds) match the
real ones within TOLERANCE, and prints both.

Run: `.venv/bin/python -m bench.realrun` (about 3 minutes). `main() -> dict` returns the figures.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import redis
import yaml
from queueworker.broker.keys import heartbeat_key
from queueworker.local.view import VIEW_KEY
from queueworker.local.workdir import read_endpoint
from queueworker.scaling.policy import PolicyConfig

from bench.autoscale.policies import Builtin
from bench.autoscale.sim import Simulation
from bench.autoscale.traces import Trace, _square, arrivals, service_times

#: Seconds of arrivals: 0.5 task/s, and 10 task/s for 20 s from t = 20 s.
TRACE = Trace(
    "real-burst",
    "0.5 task/s with a 20 s burst at 10 task/s, 2 min",
    120.0,
    _square(0.5, 10.0, 20.0, 20.0, 1e9),
    10.0,
)
SERVICE_MEAN = 0.4
SEED = 7
INTERVAL = 1.0
CONCURRENCY = 2
CONFIG = PolicyConfig(
    min_replicas=1,
    max_replicas=4,
    target_wait_seconds=3.0,
    scale_down_delay_seconds=20.0,
    slots_per_replica=CONCURRENCY,
)
#: Agreement asked of the simulation: wait percentiles within max(abs, rel x real), cost within rel x real.
TOLERANCE = {"wait_abs_seconds": 1.5, "wait_rel": 0.5, "cost_rel": 0.3}
#: Phases of the controller's clock averaged in the simulation (the real one is not known exactly).
PHASES = 8
#: The start time in a policy decision ("12 queued in 1s: projected wait ...").
PLANNED_START = re.compile(r"queued in (\d+)s")

TASKS = """
import time
import redis
import os
from queueworker import make_app

app = make_app("rrtasks")
_client = redis.Redis.from_url(os.environ["QUEUEWORKER_BROKER_URL"])


@app.task(name="rr.work")
def work(index, seconds, sent_at):
    _client.hset("rr:started", index, repr(time.time() - sent_at))
    time.sleep(seconds)
"""


class Monitor(threading.Thread):
    """Samples the run every 0.1 s: worker processes alive (by hostname), when each first heartbeat, and
    the start time local mode's policy plans with (from the decision `qw status` shows)."""

    def __init__(self, marker: str, client: redis.Redis, queue: str) -> None:
        super().__init__(daemon=True)
        self.marker, self.client, self.queue = marker, client, queue
        self.samples: list[tuple[float, int]] = []
        self.spawned: dict[str, float] = {}
        self.ready: dict[str, float] = {}
        self.planned_starts: list[float] = []
        self.stop = threading.Event()

    def workers(self) -> set[str]:
        found = set()
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                argv = Path(f"/proc/{entry.name}/cmdline").read_bytes().split(b"\0")
                stat = Path(f"/proc/{entry.name}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2 :].split()
            if b"--hostname" not in argv or fields[0] == "Z" or int(fields[2]) != int(entry.name):
                continue
            host = argv[argv.index(b"--hostname") + 1].decode()
            if host.startswith(self.marker):
                found.add(host)
        return found

    def run(self) -> None:
        while not self.stop.wait(0.1):
            now = time.time()
            alive = self.workers()
            for host in alive:
                self.spawned.setdefault(host, now)
            try:
                for raw in self.client.hkeys(heartbeat_key(self.queue)):
                    self.ready.setdefault(raw.decode() if isinstance(raw, bytes) else str(raw), now)
                view = self.client.hget(VIEW_KEY, self.marker)
            except redis.RedisError:
                view = None
            planned = PLANNED_START.search(str(json.loads(view).get("decision", ""))) if view else None
            if planned:
                self.planned_starts.append(float(planned.group(1)))
            self.samples.append((now, len(alive)))

    def worker_seconds(self, start: float, end: float) -> float:
        total = 0.0
        for (t0, n), (t1, _) in zip(self.samples, self.samples[1:], strict=False):
            lo, hi = max(t0, start), min(t1, end)
            if hi > lo:
                total += n * (hi - lo)
        return total

    def start_delays(self) -> list[float]:
        return [self.ready[h] - self.spawned[h] for h in self.spawned if h in self.ready]


def _percentiles(waits: np.ndarray) -> dict[str, float]:
    p50, p95, p99 = (float(x) for x in np.percentile(waits, [50, 95, 99]))
    return {
        "p50": round(p50, 2),
        "p95": round(p95, 2),
        "p99": round(p99, 2),
        "mean": round(float(waits.mean()), 2),
    }


def real_run(arrival: np.ndarray, service: np.ndarray, workdir: Path) -> dict[str, Any]:
    marker = f"rr{uuid.uuid4().hex[:6]}"
    queue = f"{marker}-q"
    (workdir / "rrtasks.py").write_text(textwrap.dedent(TASKS))
    (workdir / "qw.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "queueworker.dev/v1alpha1",
                "kind": "QueueWorker",
                "metadata": {"name": marker},
                "spec": {
                    "app": "rrtasks:app",
                    "queues": [queue],
                    "concurrency": CONCURRENCY,
                    "autoscaling": {
                        "mode": "builtin",
                        "minReplicas": CONFIG.min_replicas,
                        "maxReplicas": CONFIG.max_replicas,
                        "targetWaitSeconds": CONFIG.target_wait_seconds,
                        "scaleDownDelaySeconds": int(CONFIG.scale_down_delay_seconds),
                    },
                    "shutdown": {"gracePeriodSeconds": 10},
                },
            }
        )
    )
    log = open(workdir / "qw-up.log", "wb")  # noqa: SIM115 - closed below
    up = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "queueworker.cli",
            "up",
            "-f",
            "qw.yaml",
            "--plain",
            "--exporter-port",
            "0",
            "--interval",
            str(INTERVAL),
        ],
        cwd=workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while (endpoint := read_endpoint(workdir / ".qw")) is None:
            if time.monotonic() > deadline or up.poll() is not None:
                raise RuntimeError(f"qw up did not start; see {workdir / 'qw-up.log'}")
            time.sleep(0.1)
        client = redis.Redis.from_url(endpoint.url)
        monitor = Monitor(marker, client, queue)
        monitor.start()
        while not client.hlen(heartbeat_key(queue)):  # the minimum worker is consuming
            if time.monotonic() > deadline:
                raise RuntimeError(f"no worker became ready; see {workdir / 'qw-up.log'}")
            time.sleep(0.1)
        from queueworker.worker.app import make_app

        app = make_app("rr-publisher", broker_url=endpoint.url)
        t0 = time.time()
        with app.producer_or_acquire() as producer:
            for i, (at, seconds) in enumerate(zip(arrival, service, strict=True)):
                time.sleep(max(0.0, t0 + float(at) - time.time()))
                app.send_task(
                    "rr.work", args=[i, float(seconds), time.time()], queue=queue, producer=producer
                )
        while client.hlen("rr:started") < len(arrival) and time.time() - t0 < TRACE.duration + 300:
            time.sleep(0.2)
        time.sleep(max(0.0, t0 + TRACE.duration - time.time()))
        waits = {int(k): float(v) for k, v in client.hgetall("rr:started").items()}
        monitor.stop.set()
        monitor.join()
        return {
            "waits": np.array([waits[i] for i in sorted(waits)]),
            "cost": monitor.worker_seconds(t0, t0 + TRACE.duration),
            "start_delays": monitor.start_delays(),
            "planned_starts": monitor.planned_starts,
            "peak_workers": max(n for _, n in monitor.samples),
        }
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGINT)
            up.wait(timeout=120)
        log.close()


def simulated(arrival: np.ndarray, service: np.ndarray, start_delay: float) -> dict[str, Any]:
    waits, costs, peaks = [], [], []
    for k in range(PHASES):
        sim = Simulation(
            arrival,
            service,
            Builtin(CONFIG, interval=INTERVAL),
            duration=TRACE.duration,
            concurrency=CONCURRENCY,
            initial_replicas=CONFIG.min_replicas,
            phase=INTERVAL * k / PHASES,
            start_delay=start_delay,
        )
        result = sim.run()
        waits.append(result.waits)
        costs.append(result.cost)
        peaks.append(max(r for _, _, r in result.samples))
    return {"waits": np.concatenate(waits), "cost": float(np.mean(costs)), "peak_workers": max(peaks)}


def main() -> dict[str, Any]:
    rng = np.random.default_rng(SEED)
    arrival = arrivals(TRACE, rng)
    service = service_times(len(arrival), rng, mean=SERVICE_MEAN)
    with tempfile.TemporaryDirectory(prefix="qw-realrun-") as tmp:
        real = real_run(arrival, service, Path(tmp))
    delays = real["start_delays"]
    start_delay = float(np.median(delays)) if delays else 2.0
    sim = simulated(arrival, service, start_delay)
    planned = real["planned_starts"]
    real_w, sim_w = _percentiles(real["waits"]), _percentiles(sim["waits"])
    checks = {}
    for key in ("p50", "p95", "mean"):
        allowed = max(TOLERANCE["wait_abs_seconds"], TOLERANCE["wait_rel"] * real_w[key])
        checks[f"wait_{key}"] = abs(sim_w[key] - real_w[key]) <= allowed
    checks["cost"] = abs(sim["cost"] - real["cost"]) <= TOLERANCE["cost_rel"] * real["cost"]
    return {
        "trace": TRACE.description,
        "tasks": len(arrival),
        "service_mean_seconds": SERVICE_MEAN,
        "policy": {
            "min": CONFIG.min_replicas,
            "max": CONFIG.max_replicas,
            "target_wait": CONFIG.target_wait_seconds,
            "scale_down_delay": CONFIG.scale_down_delay_seconds,
            "interval": INTERVAL,
        },
        "worker_start_delay_seconds": round(start_delay, 2),
        # What local mode's policy planned with at its first and last decisions with a backlog (whole
        # seconds): the default (10 s) until a worker started, then the start time it measured.
        "local_mode_planned_start_seconds": (planned[:1] + planned[-1:]) or None,
        "real": {
            "waits": real_w,
            "cost_worker_seconds": round(real["cost"], 1),
            "peak_workers": real["peak_workers"],
            "tasks_started": len(real["waits"]),
        },
        "simulated": {
            "waits": sim_w,
            "cost_worker_seconds": round(sim["cost"], 1),
            "peak_workers": sim["peak_workers"],
        },
        "cost_ratio_sim_over_real": round(sim["cost"] / real["cost"], 3) if real["cost"] else None,
        "tolerance": TOLERANCE,
        "checks": checks,
        "agree": all(checks.values()),
    }


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
