"""A private redis-server for tests: its own port and directory, so tests may flush, pause or kill it.

The Redis that may answer on 127.0.0.1:6379 is shared with other runs and is never touched by the suite.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from hack.cluster.procs import free_port
from tests.support.tls import TlsFiles

#: free_port: the one the local cluster's processes take theirs from (hack/cluster/procs.py), for every test.
__all__ = ["RedisServer", "free_port"]


class RedisServer:
    """Start/stop a real redis-server (or another `binary` that speaks its options: valkey-server).
    Options map to redis.conf directives."""

    def __init__(
        self,
        port: int | None = None,
        password: str | None = None,
        workdir: Path | None = None,
        tls: TlsFiles | None = None,
        binary: str = "redis-server",
        **options: str,
    ) -> None:
        if binary == "redis-server" and shutil.which(binary) is None:
            raise RuntimeError("redis-server is missing: apt-get install redis-server (.ci/run does it)")
        self.port = port or free_port()
        self.password = password
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="qw-redis-"))
        self.tls = tls
        self.binary = binary
        self.options = {"save": "", "appendonly": "no", **options}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        if self.tls is not None:
            return f"rediss://{auth}127.0.0.1:{self.port}/0?{self.tls.query()}"
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def client(self, db: int = 0) -> redis.Redis:
        if self.tls is not None:
            return redis.Redis(
                host="127.0.0.1",
                port=self.port,
                password=self.password,
                db=db,
                ssl=True,
                ssl_ca_certs=str(self.tls.ca),
                ssl_certfile=str(self.tls.client_cert),
                ssl_keyfile=str(self.tls.client_key),
            )
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, db=db)

    def tls_args(self) -> list[str]:
        """TLS only: the plaintext port is closed; clients (and replicas) present the CA's certificates."""
        if self.tls is None:
            return ["--port", str(self.port)]
        return [
            "--port", "0",
            "--tls-port", str(self.port),
            "--tls-cert-file", str(self.tls.cert),
            "--tls-key-file", str(self.tls.key),
            "--tls-ca-cert-file", str(self.tls.ca),
            "--tls-auth-clients", "optional",
            "--tls-replication", "yes",
        ]  # fmt: skip

    def start(self, timeout: float = 10.0) -> RedisServer:
        args = [
            self.binary,
            *self.tls_args(),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.dir),
            "--daemonize",
            "no",
            "--logfile",
            str(self.dir / "redis.log"),
        ]
        for key, value in self.options.items():
            args += [f"--{key.replace('_', '-')}", value]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.client().ping():
                    return self
            except redis.RedisError:
                time.sleep(0.02)
        raise RuntimeError(f"redis-server on port {self.port} did not start; see {self.dir / 'redis.log'}")

    def stop(self, kill: bool = False) -> None:
        if self.proc is None:
            return
        if kill:
            self.proc.kill()
        else:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
