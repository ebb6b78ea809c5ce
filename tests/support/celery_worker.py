"""Real `celery worker` subprocesses for tests and benchmarks.

    with CeleryWorker("tasks", ["for_task_A"], broker_url=redis_url, pythonpath=[EXAMPLES]) as worker:
        worker.wait_ready()            # its heartbeat is in Redis for every queue it consumes
        ...
        worker.kill()                  # SIGKILL the whole process group (main process + pool children)

Each worker runs in its own session/process group, with its own hostname, state directory (probes),
log file and, unless a port is given, metrics disabled (several workers run at once). The environment
is the caller's plus QUEUEWORKER_BROKER_URL, a short QUEUEWORKER_HEARTBEAT_INTERVAL, PYTHONPATH (repo
root, workers/, extra paths) and `env`. `ready_via="log"` waits for Celery's "ready." line instead, for
apps that are not make_app apps (no heartbeats).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import redis
from queueworker.broker.client import connect
from queueworker.broker.url import parse

from tests.support.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
WORKERS = REPO / "workers"
EXAMPLES = REPO / "examples"


class CeleryWorker:
    """One `python -m celery -A app worker` subprocess in its own process group."""

    def __init__(
        self,
        app: str,
        queues: Sequence[str],
        *,
        broker_url: str,
        env: Mapping[str, str] | None = None,
        concurrency: int = 2,
        pool: str = "prefork",
        hostname: str | None = None,
        pythonpath: Sequence[str | Path] = (EXAMPLES,),
        metrics_port: int | None = None,
        heartbeat_interval: float = 1.0,
        loglevel: str = "INFO",
        extra_args: Sequence[str] = (),
        workdir: Path | None = None,
        ready_via: Literal["heartbeat", "log"] = "heartbeat",
    ) -> None:
        self.app = app
        self.queues = list(queues)
        self.broker_url = broker_url
        self.concurrency = concurrency
        self.pool = pool
        self.hostname = hostname or f"w{uuid.uuid4().hex[:8]}@test"
        self.ready_via = ready_via
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="qw-worker-"))
        self.state_dir = self.dir / "state"
        self.log_path = self.dir / "worker.log"
        self.extra_args = list(extra_args)
        self.loglevel = loglevel
        paths = [str(REPO), str(WORKERS), *(str(p) for p in pythonpath)]
        if os.environ.get("PYTHONPATH"):
            paths.append(os.environ["PYTHONPATH"])
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(paths),
            "PYTHONUNBUFFERED": "1",
            "QUEUEWORKER_BROKER_URL": broker_url,
            "QUEUEWORKER_HEARTBEAT_INTERVAL": str(heartbeat_interval),
            "QUEUEWORKER_STATE_DIR": str(self.state_dir),
            "QUEUEWORKER_METRICS_PORT": str(metrics_port) if metrics_port else "off",
            "QUEUEWORKER_METRICS_FLUSH_INTERVAL": "0.2",
            **(env or {}),
        }
        self.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        if env and "PROMETHEUS_MULTIPROC_DIR" in env:
            self.env["PROMETHEUS_MULTIPROC_DIR"] = env["PROMETHEUS_MULTIPROC_DIR"]
        self.proc: subprocess.Popen[bytes] | None = None

    # -- lifecycle ---------------------------------------------------------------------------------
    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "celery",
            "-A",
            self.app,
            "worker",
            "-Q",
            ",".join(self.queues),
            "-n",
            self.hostname,
            "-c",
            str(self.concurrency),
            "-P",
            self.pool,
            "--loglevel",
            self.loglevel,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            *self.extra_args,
        ]

    def start(self) -> CeleryWorker:
        self.dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.command(),
                env=self.env,
                cwd=self.dir,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError("worker not started")
        return self.proc.pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout: float = 30.0) -> CeleryWorker:
        """Wait until the worker heartbeats on every queue (or logs "ready." with ready_via="log")."""
        check = self.heartbeating if self.ready_via == "heartbeat" else self.logged_ready

        def ready() -> bool:
            if not self.running():
                raise RuntimeError(f"worker exited with {self.proc and self.proc.returncode}:\n{self.log()}")
            return check()

        try:
            wait_for(ready, timeout, message=f"worker {self.hostname} to be ready")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n--- worker log ---\n{self.log()[-4000:]}") from None
        return self

    def heartbeats(self) -> dict[str, dict[str, object]]:
        """This worker's heartbeat record per queue (queues without one are absent)."""
        client = self.broker_client()
        try:
            found = {}
            for queue in self.queues:
                raw = client.hget(f"queueworker:heartbeats:{queue}", self.hostname)
                if raw is not None:
                    found[queue] = json.loads(raw)
            return found
        finally:
            client.close()

    def broker_client(self) -> redis.Redis:
        """A client for this worker's broker, any scheme (with the worker's sentinel settings)."""
        return connect(parse(self.broker_url, self.env), timeout=2)

    def heartbeating(self) -> bool:
        return len(self.heartbeats()) == len(self.queues)

    def logged_ready(self) -> bool:
        return " ready." in self.log()

    def signal(self, signum: int) -> None:
        """Send `signum` to the main process only (Celery forwards what it must to its children)."""
        if self.running():
            os.kill(self.pid, signum)

    def terminate(self) -> None:
        self.signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL the whole process group: no shutdown code runs anywhere."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def wait(self, timeout: float) -> int:
        """Wait for the main process to exit; return its exit code (TimeoutError if it did not)."""
        if self.proc is None:
            raise RuntimeError("worker not started")
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"worker {self.hostname} still running after {timeout:g}s") from None

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, wait, then SIGKILL the group if it is still there. Returns the exit code."""
        if self.proc is None:
            return None
        if self.running():
            self.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=timeout)
        self.kill_group_leftovers()
        return self.proc.returncode

    def kill_group_leftovers(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def __enter__(self) -> CeleryWorker:
        return self.start()

    def __exit__(self, kind: object, *exc: object) -> None:
        if kind is not None:  # the test failed inside the block: its captured stderr shows the worker's side
            tail = "\n".join(self.log().splitlines()[-80:])
            sys.stderr.write(f"--- last lines of {self.hostname}'s log ({self.log_path}) ---\n{tail}\n")
        self.stop(timeout=10)


#: A task module "of their own", as an app team writes one: make_app plus tasks that record in Redis
#: what ran (list `test:executions`, entries "tag:pid") so tests can count runs and duplicates.
RECORDING_TASKS = """
import os
import time
import urllib.request

from queueworker import make_app
from queueworker.broker.client import connect

app = make_app("qwtasks")
_client = []


def r():
    if not _client or _client[0][0] != os.getpid():
        _client[:] = [(os.getpid(), connect(os.environ["QUEUEWORKER_BROKER_URL"]))]
    return _client[0][1]


@app.task(name="qwtasks.record")
def record(tag, seconds=0.0):
    r().rpush("test:started", tag)
    time.sleep(seconds)
    r().rpush("test:executions", f"{tag}:{os.getpid()}")
    return tag


@app.task(name="qwtasks.crash")
def crash(tag):
    r().rpush("test:crashes", tag)
    os.kill(os.getpid(), 9)


@app.task(name="qwtasks.fail")
def fail():
    raise RuntimeError("boom")


@app.task(name="qwtasks.flaky", bind=True, max_retries=1)
def flaky(self, tag):
    if not self.request.retries:
        raise self.retry(countdown=0)
    r().rpush("test:executions", f"{tag}:{os.getpid()}")
"""


def write_task_module(directory: Path, name: str = "qwtasks", source: str = RECORDING_TASKS) -> Path:
    """Write a task module into `directory` (put it on the worker's `pythonpath`); return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.py"
    path.write_text(source)
    return path


def as_text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def executions(client: redis.Redis, key: str = "test:executions") -> list[str]:
    """Tags recorded by RECORDING_TASKS' `record`, one per run (pid stripped)."""
    raws = client.lrange(key, 0, -1)
    return [(raw.decode() if isinstance(raw, bytes) else str(raw)).rsplit(":", 1)[0] for raw in raws]


def scrape(port: int) -> dict[str, float]:
    """A worker's /metrics on this machine as {sample with its labels: value}."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples
