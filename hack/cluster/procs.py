"""Processes of a local cluster: started detached with their logs in the root directory, their pids
recorded so that another command (`cluster down`) or a test's teardown can stop them."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def start(
    root: Path, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    logs = root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / f"{name}.log", "ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as a whole, untouched by Ctrl-C
            env={**os.environ, **(env or {})},
        )
    (root / "pids").mkdir(exist_ok=True)
    (root / "pids" / name).write_text(str(proc.pid))
    (root / "argv").mkdir(exist_ok=True)  # what `restart` starts again
    (root / "argv" / name).write_text(json.dumps({"argv": list(argv), "env": dict(env or {})}))
    return proc


def restart(root: Path, name: str) -> subprocess.Popen[bytes]:
    """Stop the recorded process `name` (SIGTERM, as a restart by its supervisor would) and start it
    again with the arguments and environment it was started with."""
    recorded = root / "argv" / name
    if not recorded.exists():
        raise SystemExit(f"no {name} was started from {root}: is the cluster up?")
    saved = json.loads(recorded.read_text())
    stop(root, [name])
    return start(root, name, saved["argv"], saved["env"])


def log_tail(root: Path, name: str, lines: int = 30) -> str:
    path = root / "logs" / f"{name}.log"
    if not path.exists():
        return f"(no log at {path})"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):  # a zombie of ours is not alive
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def stop(root: Path, names: Sequence[str] | None = None, timeout: float = 15.0) -> list[str]:
    """SIGTERM each recorded process group (all, or `names`, in that order), SIGKILL after `timeout`."""
    pid_dir = root / "pids"
    if not pid_dir.is_dir():
        return []
    order = list(names) if names is not None else sorted(p.name for p in pid_dir.iterdir())
    stopped = []
    for name in order:
        path = pid_dir / name
        if not path.exists():
            continue
        pid = int(path.read_text())
        if alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while alive(pid) and time.monotonic() < deadline:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
                time.sleep(0.1)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            stopped.append(name)
        path.unlink()
    return stopped


def wait(what: str, check: Callable[[], bool], timeout: float, diagnose: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # noqa: S110 - not up yet: retried until the deadline
            pass
        time.sleep(0.25)
    raise TimeoutError(f"{what} not ready after {timeout:.0f} s\n{diagnose()}")
