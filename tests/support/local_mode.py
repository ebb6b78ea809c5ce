"""Helpers for the local-mode tests (tests/redis/local): a fresh project directory (task module and
manifests), `qw up` as a real subprocess, `qw status --json`, and the processes a run leaves on the
machine (by name and by process group)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import yaml

TASKS = """
import os, time
from queueworker import make_app
from queueworker.broker.client import connect

app = make_app("ltasks")
_client = None


def client():
    global _client
    if _client is None:
        _client = connect(os.environ["QUEUEWORKER_BROKER_URL"])
    return _client


@app.task(name="ltasks.work")
def work(seconds=0.1):
    time.sleep(float(seconds))
    client().sadd("lt:done", work.request.id)
    return seconds
"""


def manifest(
    name: str,
    queue: str,
    autoscaling: dict[str, Any],
    replicas: int = 1,
    grace: int = 5,
    routes: tuple[str, ...] = (),
) -> dict[str, Any]:
    return {
        "apiVersion": "queueworker.dev/v1alpha1",
        "kind": "QueueWorker",
        "metadata": {"name": name},
        "spec": {
            "app": "ltasks:app",
            "queues": [queue],
            "routes": list(routes),
            "concurrency": 2,
            "replicas": replicas,
            "autoscaling": autoscaling,
            "shutdown": {"gracePeriodSeconds": grace},
        },
    }


class Project:
    """A user's directory: ltasks.py, manifests under qw/, state in .qw/."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.marker = f"lt{uuid.uuid4().hex[:8]}"  # in every QueueWorker name, so in every worker's argv
        (root / "ltasks.py").write_text(textwrap.dedent(TASKS))
        (root / "qw").mkdir()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = root / "qw-up.log"
        self.redis_names: set[str] = set()  # valkey-server retitles itself "valkey-server HOST:PORT"

    def name(self, short: str) -> str:
        return f"{self.marker}-{short}"

    def write(self, *manifests: dict[str, Any]) -> Path:
        path = self.root / "qw" / "queueworkers.yaml"
        path.write_text(yaml.safe_dump_all(manifests))
        return path

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["QUEUEWORKER_HEARTBEAT_INTERVAL"] = "1"
        env.pop("QW_STATE_DIR", None)
        return env

    def qw(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "queueworker.cli", *args],
            cwd=self.root,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def up(self, *extra: str) -> subprocess.Popen[bytes]:
        """`qw up -f qw/` in its own process group, output to qw-up.log."""
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "queueworker.cli",
                    "up",
                    "-f",
                    "qw/",
                    "--exporter-port",
                    "0",
                    "--plain",
                    "--interval",
                    "0.5",
                    *extra,
                ],
                cwd=self.root,
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self.proc

    def status(self) -> dict[str, Any] | None:
        result = self.qw("status", "--json", timeout=30)
        if result.returncode != 0:
            return None
        data = json.loads(result.stdout)
        if data.get("qw_up") is None:
            return None
        return {row["name"]: row for row in data["queueworkers"]}

    def row(self, short: str) -> dict[str, Any] | None:
        rows = self.status()
        return rows.get(self.name(short)) if rows else None

    def status_url(self) -> str:
        """The embedded Redis's URL, found the way `qw status` finds it."""
        from queueworker.local.workdir import read_endpoint

        endpoint = read_endpoint(self.root / ".qw")
        assert endpoint is not None, "qw up is not running"
        self.redis_names.add(f"valkey-server {endpoint.host}:{endpoint.port}")
        return endpoint.url

    def signal_up(self, sig: int) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, sig)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def processes(self) -> dict[int, tuple[int, str]]:
        """Live processes of this project (pid -> (pgid, cmdline)), found by name: the marker or the root."""
        names = [self.marker, str(self.root), *self.redis_names]
        return {
            pid: (pgid, cmd)
            for pid, (pgid, cmd, cwd) in all_processes().items()
            if any(n in cmd for n in names) or cwd.startswith(str(self.root))
        }


def all_processes() -> dict[int, tuple[int, str, str]]:
    """pid -> (pgid, command line, working directory) of every live (non-zombie) process."""
    found: dict[int, tuple[int, str, str]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text(errors="replace")
            cmdline = (
                Path(f"/proc/{entry.name}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            )
        except OSError:
            continue
        try:
            cwd = os.readlink(f"/proc/{entry.name}/cwd")
        except OSError:
            cwd = ""
        fields = stat[stat.rfind(")") + 2 :].split()
        if fields and fields[0] != "Z":
            found[int(entry.name)] = (int(fields[2]), cmdline, cwd)
    return found


def live_in_groups(pgids: set[int]) -> dict[int, tuple[int, str]]:
    return {pid: (pgid, cmd) for pid, (pgid, cmd, _) in all_processes().items() if pgid in pgids}


def kill_leftovers(pgids: set[int]) -> None:
    for pgid in pgids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
