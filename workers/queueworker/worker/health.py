"""`qw probe liveness|readiness`: exec probes answered from the worker's health file.

No broker round trip and no broadcast (`celery inspect ping` costs a pidbox message per probe and fails
while every slot is busy): the worker's heartbeat thread records its last successful Redis write and the
last tick of its consumer loop (worker/healthfile.py); the probe compares them with the bounds the
worker wrote, and answers in milliseconds.

- liveness fails when the worker stopped consuming: the worker process is gone, its broker contact is
  older than `liveness_max_age` (Redis unreachable/hung, heartbeat stuck) or its consumer loop has not
  ticked for that long. A long task changes none of these.
- readiness fails until the worker is ready (consumer started) and while its broker contact is older than
  `readiness_max_age`.
This module imports nothing heavy (no Celery): a probe runs every few seconds in every worker pod.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FILE_NAME = "worker.json"


def health_dir() -> Path:
    """Where the worker keeps its health file: QUEUEWORKER_STATE_DIR, else /tmp/queueworker."""
    from queueworker.worker.settings import current

    return Path(current().state_dir)


def health_path() -> Path:
    return health_dir() / FILE_NAME


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    reason: str

    def line(self, kind: str) -> str:
        return f"{kind} {'ok' if self.ok else 'FAILED'}: {self.reason}"


def read_health(path: Path | None = None) -> dict[str, Any] | None:
    try:
        data = json.loads((path or health_path()).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _pid_alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, TypeError, ValueError):
        return False
    except PermissionError:
        return True
    return True


def _age(data: dict[str, Any], field: str, now: float) -> float | None:
    value = data.get(field)
    return None if value is None else max(0.0, now - float(value))


def liveness(path: Path | None = None, max_age: float | None = None, now: float | None = None) -> ProbeResult:
    data = read_health(path)
    if data is None:
        return ProbeResult(False, f"no health file at {path or health_path()}")
    if not _pid_alive(data.get("pid")):
        return ProbeResult(False, f"worker pid {data.get('pid')} is not running")
    now = time.time() if now is None else now
    bound = float(max_age if max_age is not None else data.get("liveness_max_age", 60.0))
    loop = _age(data, "loop_tick", now)
    if loop is not None and loop > bound:
        return ProbeResult(False, f"consumer loop stalled for {loop:.0f}s (bound {bound:g}s)")
    broker = _age(data, "broker_ok", now)
    if broker is None:
        since_start = _age(data, "started", now) or 0.0
        if since_start > bound:
            return ProbeResult(
                False, f"no broker contact in the {since_start:.0f}s since start (bound {bound:g}s)"
            )
        return ProbeResult(True, f"starting ({since_start:.0f}s), no broker contact yet")
    if broker > bound:
        return ProbeResult(False, f"no broker contact for {broker:.0f}s (bound {bound:g}s)")
    return ProbeResult(True, f"broker contact {broker:.1f}s ago, loop tick {loop or 0.0:.1f}s ago")


def readiness(
    path: Path | None = None, max_age: float | None = None, now: float | None = None
) -> ProbeResult:
    data = read_health(path)
    if data is None:
        return ProbeResult(False, f"no health file at {path or health_path()}")
    if not _pid_alive(data.get("pid")):
        return ProbeResult(False, f"worker pid {data.get('pid')} is not running")
    if not data.get("ready"):
        return ProbeResult(False, "worker not ready yet (consumer not started)")
    now = time.time() if now is None else now
    bound = float(max_age if max_age is not None else data.get("readiness_max_age", 16.0))
    broker = _age(data, "broker_ok", now)
    if broker is None:
        return ProbeResult(False, "no broker contact yet")
    if broker > bound:
        return ProbeResult(False, f"no broker contact for {broker:.0f}s (bound {bound:g}s)")
    return ProbeResult(True, f"ready, broker contact {broker:.1f}s ago")


PROBES = {"liveness": liveness, "readiness": readiness}


def run(kind: str, path: Path | None = None, max_age: float | None = None) -> tuple[int, str]:
    """Exit code and the one line to print."""
    result = PROBES[kind](path, max_age)
    return (0 if result.ok else 1), result.line(kind)
