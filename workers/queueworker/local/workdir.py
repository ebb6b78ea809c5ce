"""`qw up`'s workdir (`.qw/` by default; `--state-dir`, `$QW_STATE_DIR`): the embedded Redis's data and
password, the routes file, the workers' own directories, and a lock so two `qw up` never share one.
`qw status` and `qw enqueue` find Redis from here.

The password lives only in `.qw/redis/password` (mode 0600): it is never printed, logged or put on a
command line; the Redis URL built from it is passed to children through the environment.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import quote

DEFAULT_WORKDIR = ".qw"
#: The variable and the flag (`--state-dir`) keep their names: they are the command line's.
WORKDIR_ENV = "QW_STATE_DIR"


class WorkdirError(RuntimeError):
    """The workdir cannot be used (locked by another `qw up`, unreadable, ...)."""


def resolve(explicit: str | None = None) -> Path:
    """The workdir: `explicit` (--state-dir), else $QW_STATE_DIR, else `.qw`."""
    return Path(explicit or os.environ.get(WORKDIR_ENV) or DEFAULT_WORKDIR).resolve()


@dataclass(frozen=True)
class RedisEndpoint:
    host: str
    port: int
    password: str

    @property
    def url(self) -> str:
        return f"redis://:{quote(self.password, safe='')}@{self.host}:{self.port}/0"

    @property
    def display(self) -> str:
        """The URL without the password, for people."""
        return f"redis://{self.host}:{self.port}/0"


def redis_dir(root: Path) -> Path:
    return root / "redis"


def password(root: Path) -> str:
    """The embedded Redis's password, generated once and kept (0600) so restarts reuse it."""
    path = redis_dir(root) / "password"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    return secret


def write_endpoint(root: Path, host: str, port: int, pid: int) -> None:
    path = redis_dir(root) / "endpoint.json"
    path.write_text(json.dumps({"host": host, "port": port, "pid": pid}) + "\n")


def clear_endpoint(root: Path) -> None:
    (redis_dir(root) / "endpoint.json").unlink(missing_ok=True)


def read_endpoint(root: Path) -> RedisEndpoint | None:
    """The running embedded Redis recorded in root, or None when `qw up` is not running there."""
    try:
        info = json.loads((redis_dir(root) / "endpoint.json").read_text())
        secret = (redis_dir(root) / "password").read_text().strip()
        return RedisEndpoint(str(info["host"]), int(info["port"]), secret)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def routes_file(root: Path) -> Path:
    return root / "routes.json"


class Lock:
    """An exclusive flock on root/lock, held for the life of one `qw up`."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.path = root / "lock"
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        f = open(self.path, "a+")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "?"
            f.close()
            raise WorkdirError(
                f"another `qw up` (pid {holder}) is running with state directory "
                f"{self.path.parent}; stop it or pass --state-dir"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        self._file = f

    def release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
