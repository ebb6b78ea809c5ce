"""Child processes of `qw up`: each in its own session (so a Ctrl-C at the terminal reaches only `qw up`,
which then stops them in order), with PR_SET_PDEATHSIG so the kernel signals them if `qw up` dies, and a
reader thread that forwards every output line, prefixed with the process name, to one sink.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

PR_SET_PDEATHSIG = 1

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_prctl = getattr(_libc, "prctl", None)  # Linux only; elsewhere the watchdog alone cleans up

LineSink = Callable[[str, str], None]


def _child_setup(parent_pid: int, death_signal: int) -> None:
    """Runs in the child between fork and exec (the session is already new: start_new_session=True)."""
    if death_signal and _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, death_signal, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os.kill(os.getpid(), death_signal)


def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str | Path | None = None,
    death_signal: int = signal.SIGTERM,
    stdin: int | None = subprocess.DEVNULL,
    capture: bool = True,
) -> subprocess.Popen[bytes]:
    """Start argv as the leader of a new session and process group (pgid == pid)."""
    parent = os.getpid()
    return subprocess.Popen(
        list(argv),
        env=dict(env),
        cwd=cwd,
        stdin=stdin,
        stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
        stderr=subprocess.STDOUT if capture else subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=lambda: _child_setup(parent, death_signal),  # noqa: PLW1509 - only a prctl syscall
    )


def pump_lines(name: str, proc: subprocess.Popen[bytes], sink: LineSink) -> threading.Thread:
    """Forward proc's output line by line to sink(name, line) from a daemon thread."""

    def run() -> None:
        assert proc.stdout is not None
        for raw in iter(proc.stdout.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            if line.strip():
                sink(name, line)
        proc.stdout.close()

    thread = threading.Thread(target=run, name=f"log-{name}", daemon=True)
    thread.start()
    return thread


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is pgid, read from /proc."""
    if not os.path.isdir("/proc"):  # no procfs: ask the kernel whether the group still has a member
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        except PermissionError:
            pass
        return [pgid]
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read().decode("utf-8", "replace")
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pgid:
            found.append(int(entry.name))
    return found


def signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def wait_groups_gone(pgids: Sequence[int], timeout: float, poll: float = 0.1) -> list[int]:
    """Wait until no live process is left in any of pgids; return the groups still alive at the timeout."""
    deadline = time.monotonic() + timeout
    left = [g for g in pgids if group_members(g)]
    while left and time.monotonic() < deadline:
        time.sleep(poll)
        left = [g for g in left if group_members(g)]
    return left
