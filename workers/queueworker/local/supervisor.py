"""The process backend of local mode: what Kubernetes' Deployments and kubelet do for the operator.

Each child is the leader of its own process group. Stopping one sends SIGTERM to the leader (a Celery
worker then finishes or requeues its tasks) and SIGKILLs the whole group once its grace period is over.
A child that exits on its own is a crash: it is restarted after an exponential backoff (1 s, 2 s, ... up
to 30 s; reset after a minute of running), and the view shows the restarts and the countdown.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from queueworker.local.procs import LineSink, group_members, pump_lines, signal_group, spawn
from queueworker.local.watchdog import Watchdog

BACKOFF_START = 1.0
BACKOFF_MAX = 30.0
BACKOFF_RESET_AFTER = 60.0


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    grace: float
    kind: str = "worker"  # worker | beat | exporter
    owner: str = ""  # the QueueWorker's name, for workers
    index: int = 0
    hostname: str = ""  # the Celery hostname, for workers
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    backoff: float = 0.0
    restart_at: float | None = None
    stopping_since: float | None = None
    last_exit: int | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def phase(self) -> str:
        """running, stopping, or crashed (waiting to be started again)."""
        if self.stopping_since is not None:
            return "stopping"
        if self.proc is None:
            return "crashed"
        return "running"


class Supervisor:
    def __init__(
        self, watchdog: Watchdog, sink: LineSink, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.watchdog = watchdog
        self.sink = sink
        self.clock = clock
        self.children: dict[str, Child] = {}

    # -- starting and stopping -------------------------------------------------------------------------
    def start(self, child: Child) -> Child:
        self.children[child.name] = child
        self._launch(child)
        return child

    def _launch(self, child: Child) -> None:
        child.proc = spawn(child.argv, env=child.env, cwd=child.cwd)
        child.started_at = self.clock()
        child.restart_at = None
        self.watchdog.add(child.proc.pid, child.grace)
        pump_lines(child.name, child.proc, self.sink)

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        """Begin a graceful stop (sig, SIGTERM by default, to the leader); poll() finishes it."""
        child = self.children.get(name)
        if child is None or child.stopping_since is not None:
            return
        child.stopping_since = self.clock()
        if child.proc is None:  # waiting for a restart: nothing to stop
            return
        with contextlib.suppress(ProcessLookupError):
            child.proc.send_signal(sig)

    def kill_all(self) -> None:
        for child in self.children.values():
            if child.proc is not None:
                signal_group(child.proc.pid, signal.SIGKILL)

    # -- the loop ----------------------------------------------------------------------------------
    def poll(self) -> None:
        """Reap exits, restart crashed children whose backoff is over, SIGKILL stops past their grace."""
        now = self.clock()
        for child in list(self.children.values()):
            proc = child.proc
            if proc is not None and proc.poll() is not None:
                self._reaped(child, proc, now)
            elif (
                proc is not None
                and child.stopping_since is not None
                and now - child.stopping_since > child.grace
            ):
                self.sink(child.name, f"still running {child.grace:g} s after SIGTERM: killing it")
                signal_group(proc.pid, signal.SIGKILL)
            if child.proc is None and child.stopping_since is not None:
                del self.children[child.name]
            elif child.proc is None and child.restart_at is not None and now >= child.restart_at:
                child.restarts += 1
                self.sink(child.name, f"restarting (restart #{child.restarts})")
                self._launch(child)

    def _reaped(self, child: Child, proc: subprocess.Popen[bytes], now: float) -> None:
        child.last_exit = proc.returncode
        if group_members(proc.pid):  # pool children or subprocesses left behind
            signal_group(proc.pid, signal.SIGKILL)
        self.watchdog.remove(proc.pid)
        child.proc = None
        if child.stopping_since is not None:
            return
        ran = now - child.started_at
        child.backoff = (
            BACKOFF_START
            if ran > BACKOFF_RESET_AFTER or not child.backoff
            else min(BACKOFF_MAX, child.backoff * 2)
        )
        child.restart_at = now + child.backoff
        self.sink(
            child.name,
            f"exited unexpectedly ({describe_exit(proc.returncode)}); restarting in {child.backoff:g} s",
        )

    def stop_all(
        self,
        kinds: tuple[str, ...],
        interrupted: Callable[[], bool] = lambda: False,
    ) -> None:
        """Stop every child of these kinds and wait for them, each within its grace period."""
        for child in list(self.children.values()):
            if child.kind in kinds:
                self.stop(child.name)
        while any(c.kind in kinds for c in self.children.values()):
            if interrupted():
                for child in self.children.values():
                    if child.kind in kinds:
                        child.grace = 0.0
            self.poll()
            time.sleep(0.1)

    # -- views ---------------------------------------------------------------------------------------
    def workers_of(self, owner: str) -> list[Child]:
        return sorted(
            (c for c in self.children.values() if c.kind == "worker" and c.owner == owner),
            key=lambda c: c.index,
        )

    def free_index(self, owner: str) -> int:
        used = {c.index for c in self.workers_of(owner)}
        index = 1
        while index in used:
            index += 1
        return index


def describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
