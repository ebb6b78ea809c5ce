"""A Sentinel-managed Redis on loopback for tests and benchmarks: a primary, replicas and sentinels, each a
real redis-server on a free port in its own directory, optionally TLS-only and with separate passwords.

    with SentinelCluster(tls=make_tls()) as cluster:
        cluster.url, cluster.env        # what a make_app process needs
        old = cluster.primary()
        old.stop(kill=True)
        new = cluster.wait_failover(old.port)
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis

from tests.support.redis_server import RedisServer, free_port
from tests.support.tls import TlsFiles


class Sentinel:
    """One `redis-server CONF --sentinel` process."""

    def __init__(self, workdir: Path, master_port: int, cluster: SentinelCluster) -> None:
        self.port = free_port()
        self.dir = workdir
        self.cluster = cluster
        self.master_port = master_port
        self.proc: subprocess.Popen[bytes] | None = None
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config = self.dir / "sentinel.conf"

    def write_config(self) -> None:
        c = self.cluster
        lines = ["bind 127.0.0.1", f"dir {self.dir}", f"logfile {self.dir / 'sentinel.log'}"]
        if c.tls is not None:
            lines += [
                "port 0",
                f"tls-port {self.port}",
                f"tls-cert-file {c.tls.cert}",
                f"tls-key-file {c.tls.key}",
                f"tls-ca-cert-file {c.tls.ca}",
                "tls-auth-clients optional",
                "tls-replication yes",
            ]
        else:
            lines.append(f"port {self.port}")
        lines += [
            f"sentinel monitor {c.master} 127.0.0.1 {self.master_port} {c.quorum}",
            f"sentinel down-after-milliseconds {c.master} {c.down_after_ms}",
            f"sentinel failover-timeout {c.master} {c.failover_timeout_ms}",
            f"sentinel parallel-syncs {c.master} 1",
        ]
        if c.password:
            lines.append(f"sentinel auth-pass {c.master} {c.password}")
        if c.sentinel_password:
            lines += [f"requirepass {c.sentinel_password}", f"sentinel sentinel-pass {c.sentinel_password}"]
        self.config.write_text("\n".join(lines) + "\n")

    def start(self) -> Sentinel:
        if not self.config.exists():
            self.write_config()
        self.proc = subprocess.Popen(
            ["redis-server", str(self.config), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError):
                if self.client().ping():
                    return self
            time.sleep(0.05)
        raise RuntimeError(f"sentinel on port {self.port} did not start; see {self.dir}")

    def client(self) -> redis.Redis:
        c = self.cluster
        tls = c.tls_client_options()
        return redis.Redis(
            host="127.0.0.1", port=self.port, password=c.sentinel_password, socket_timeout=2, **tls
        )

    def stop(self, kill: bool = False) -> None:
        if self.proc is None:
            return
        self.proc.kill() if kill else self.proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


class SentinelCluster:
    """A primary, `replicas` replicas and `sentinels` sentinels (quorum 2) on loopback."""

    def __init__(
        self,
        replicas: int = 1,
        sentinels: int = 3,
        password: str | None = "data-secret",
        sentinel_password: str | None = "sentinel-secret",
        tls: TlsFiles | None = None,
        master: str = "mymaster",
        down_after_ms: int = 2000,
        failover_timeout_ms: int = 10000,
        workdir: Path | None = None,
        **options: str,
    ) -> None:
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is missing: apt-get install redis-server")
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="qw-sentinel-"))
        self.password = password
        self.sentinel_password = sentinel_password
        self.tls = tls
        self.master = master
        self.quorum = 2
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.options = options
        self.nodes: list[RedisServer] = []
        self.sentinels: list[Sentinel] = []
        self.replica_count = replicas
        self.sentinel_count = sentinels

    # -- what clients need ----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        hosts = ";".join(
            f"sentinel://{auth if i == 0 else ''}127.0.0.1:{s.port}" for i, s in enumerate(self.sentinels)
        )
        query = f"?{self.tls.query()}" if self.tls is not None else ""
        return f"{hosts}/0{query}"

    @property
    def env(self) -> dict[str, str]:
        env = {"QUEUEWORKER_SENTINEL_MASTER": self.master}
        if self.sentinel_password:
            env["QUEUEWORKER_SENTINEL_PASSWORD"] = self.sentinel_password
        return env

    def tls_client_options(self) -> dict[str, Any]:
        if self.tls is None:
            return {}
        return {"ssl": True, "ssl_ca_certs": str(self.tls.ca), "ssl_cert_reqs": "required"}

    # -- lifecycle ------------------------------------------------------------------------------------
    def node_options(self) -> dict[str, Any]:
        options = {"appendonly": "yes", "appendfsync": "everysec", **self.options}
        if self.password:
            options["masterauth"] = self.password
        return options

    def start(self) -> SentinelCluster:
        primary = RedisServer(
            password=self.password, tls=self.tls, workdir=self.dir / "node0", **self.node_options()
        )
        primary.dir.mkdir(parents=True, exist_ok=True)
        primary.start()
        self.nodes.append(primary)
        for i in range(self.replica_count):
            replica = RedisServer(
                password=self.password,
                tls=self.tls,
                workdir=self.dir / f"node{i + 1}",
                replicaof=f"127.0.0.1 {primary.port}",
                **self.node_options(),
            )
            replica.dir.mkdir(parents=True, exist_ok=True)
            replica.start()
            self.nodes.append(replica)
        with self.syncing_at_once(primary):
            self.wait_replicas(primary, self.replica_count)
        for i in range(self.sentinel_count):
            self.sentinels.append(Sentinel(self.dir / f"sentinel{i}", primary.port, self).start())
        self.wait_sentinels_agree()
        return self

    @contextlib.contextmanager
    def syncing_at_once(self, primary: RedisServer) -> Iterator[None]:
        """A primary waits repl-diskless-sync-delay (5 s) for more replicas before a full sync: not within
        this block (setting up, or settling between faults); the value is put back after it, so a fault
        meets the delay a real primary has."""
        admin = primary.client()
        try:
            delay = str(admin.config_get("repl-diskless-sync-delay")["repl-diskless-sync-delay"])
            admin.config_set("repl-diskless-sync-delay", 0)
            yield
            admin.config_set("repl-diskless-sync-delay", delay)
        finally:
            admin.close()

    def wait_replicas(self, node: RedisServer, count: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError):
                info = node.client().info("replication")
                online = [v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
                if sum(1 for v in online if v.get("state") == "online") >= count:
                    return
            time.sleep(0.05)
        raise TimeoutError(f"{count} replica(s) of port {node.port} not online within {timeout:g}s")

    def wait_sentinels_agree(self, timeout: float = 30.0) -> None:
        """Until every running sentinel knows the others and the replicas."""
        deadline = time.monotonic() + timeout
        live = [s for s in self.sentinels if s.proc is not None]
        while time.monotonic() < deadline:
            ok = True
            for s in live:
                try:
                    state: Any = s.client().sentinel_master(self.master)
                except redis.RedisError:
                    ok = False
                    break
                if int(state.get("num-other-sentinels", 0)) < len(live) - 1:
                    ok = False
                if int(state.get("num-slaves", 0)) < self.replica_count:
                    ok = False
            if ok:
                return
            time.sleep(0.1)
        raise TimeoutError("sentinels did not discover each other and the replicas")

    def primary_port(self) -> int | None:
        for s in self.sentinels:
            if s.proc is None:
                continue
            with contextlib.suppress(redis.RedisError):
                addr: Any = s.client().sentinel_get_master_addr_by_name(self.master)
                if addr:
                    return int(addr[1])
        return None

    def node(self, port: int) -> RedisServer:
        return next(n for n in self.nodes if n.port == port)

    def primary(self) -> RedisServer:
        port = self.primary_port()
        if port is None:
            raise RuntimeError("no sentinel answers")
        return self.node(port)

    def replicas(self) -> list[RedisServer]:
        port = self.primary_port()
        return [n for n in self.nodes if n.port != port]

    def wait_failover(self, old_port: int, timeout: float = 60.0) -> RedisServer:
        """Until the sentinels name a primary other than `old_port` and it accepts writes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            port = self.primary_port()
            if port is not None and port != old_port:
                with contextlib.suppress(redis.RedisError):
                    node = self.node(port)
                    if node.client().info("replication").get("role") == "master":
                        return node
            time.sleep(0.05)
        raise TimeoutError(f"no failover away from port {old_port} within {timeout:g}s")

    def stop(self) -> None:
        for s in self.sentinels:
            s.stop(kill=True)
        for n in self.nodes:
            with contextlib.suppress(ProcessLookupError):
                if n.proc is not None and n.proc.poll() is None:
                    n.proc.send_signal(18)  # SIGCONT: a frozen node must be able to exit
            n.stop(kill=True)

    def __enter__(self) -> SentinelCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
