"""The watchdog of `qw up`: a tiny process in its own session that outlives `qw up` only to clean up.

`qw up` keeps the write end of the watchdog's stdin and tells it about every process group it starts:
`add PGID GRACE STAGE`, `del PGID`, and `bye` on a clean exit. If stdin reaches end-of-file without `bye`
(`qw up` was killed, even by SIGKILL), the watchdog stops every group it knows: stage 0 (workers, beat,
exporter) first — SIGTERM, then SIGKILL of the whole group after its grace period — then stage 1 (the
embedded Redis, so it can write its append-only file after the workers have acked what they finished).
Run as `python -m queueworker.local.watchdog WORKDIR` (the argument only names it in `ps`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from queueworker.local.procs import group_members, signal_group, spawn, wait_groups_gone

REDIS_GRACE = 10.0


@dataclass
class Group:
    pgid: int
    grace: float
    stage: int


def cleanup(groups: dict[int, Group]) -> None:
    for stage in sorted({g.stage for g in groups.values()}):
        members = [g for g in groups.values() if g.stage == stage]
        for g in members:
            if stage:
                signal_group(g.pgid, signal.SIGTERM)
            else:
                _term_leader(g.pgid)
        start = time.monotonic()
        for g in sorted(members, key=lambda g: g.grace):
            remaining = max(0.0, g.grace - (time.monotonic() - start))
            if wait_groups_gone([g.pgid], remaining):
                signal_group(g.pgid, signal.SIGKILL)
        wait_groups_gone([g.pgid for g in members], 5.0)


def _term_leader(pgid: int) -> None:
    # Only the leader: a Celery worker's warm shutdown lets its pool children finish their tasks.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pgid, signal.SIGTERM)


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is for `qw up`; we act on its exit
    groups: dict[int, Group] = {}
    for line in sys.stdin:
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "add" and len(parts) == 4:
            groups[int(parts[1])] = Group(int(parts[1]), float(parts[2]), int(parts[3]))
        elif parts[0] == "del" and len(parts) == 2:
            groups.pop(int(parts[1]), None)
        elif parts[0] == "bye":
            return 0
    cleanup({k: g for k, g in groups.items() if group_members(k)})
    return 0


class Watchdog:
    """The `qw up` side: starts the watchdog and tells it what to clean up."""

    def __init__(self, directory: Path, env: dict[str, str]) -> None:
        self.proc = spawn(
            [sys.executable, "-m", "queueworker.local.watchdog", str(directory)],
            env=env,
            death_signal=0,
            stdin=subprocess.PIPE,
            capture=False,
        )

    def _send(self, line: str) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(f"{line}\n".encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass

    def add(self, pgid: int, grace: float, stage: int = 0) -> None:
        self._send(f"add {pgid} {grace:.1f} {stage}")

    def remove(self, pgid: int) -> None:
        self._send(f"del {pgid}")

    def close(self) -> None:
        """Clean exit: everything was stopped by `qw up` itself."""
        self._send("bye")
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


if __name__ == "__main__":
    sys.exit(main())
