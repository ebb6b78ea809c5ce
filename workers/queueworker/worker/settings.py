"""The worker runtime's settings: one typed table of QUEUEWORKER_* variables, read once by make_app.

`WorkerSettings.from_env()` reads and checks every variable (all problems in one error); make_app calls it
and `use()`s the result, and every hook reads `current()`. docs/worker-settings.md is generated from this
table (`python -m queueworker.worker.settings > docs/worker-settings.md`; a unit test compares them).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

PREFIX = "QUEUEWORKER_"


def _setting(default: Any, doc: str, secret: bool = False) -> Any:
    return field(default=default, metadata={"doc": doc, "secret": secret})


@dataclass(frozen=True)
class WorkerSettings:
    """Every QUEUEWORKER_* variable a make_app app reads (field name = the variable without the prefix)."""

    broker_url: str = _setting(
        "redis://localhost:6379/0",
        "broker: `redis://`, `rediss://` (ssl_ca_certs, ssl_certfile, ssl_keyfile, ssl_cert_reqs in the "
        "query) or `sentinel://H:P;sentinel://H:P[/DB]`; its password is the data nodes'",
        secret=True,
    )
    sentinel_master: str = _setting("mymaster", "sentinel mode: the master set's name")
    sentinel_password: str | None = _setting(None, "sentinel mode: the sentinels' own password", secret=True)
    result_backend: str | None = _setting(None, "Celery result backend (none by default)", secret=True)
    visibility_timeout: float = _setting(
        3600.0, "seconds: must exceed the longest task and any ETA (broker, result backend, ETA limit)"
    )
    prefetch_multiplier: int = _setting(1, "Celery's worker_prefetch_multiplier")
    routes_file: str | None = _setting(None, "routes JSON (the operator's routes ConfigMap) -> task_routes")
    soft_shutdown_timeout: float = _setting(
        25.0, "seconds SIGTERM lets running tasks finish before they are requeued (0: no bound)"
    )
    max_redeliveries: int = _setting(3, "redeliveries of a task before it is rejected without requeue")
    broker_socket_timeout: float = _setting(10.0, "seconds: how fast a dead or frozen Redis is noticed")
    atomic_fetch: bool = _setting(True, "fetch and record in one Redis operation; 0 consumes the stock way")
    publish_min_replicas: int = _setting(
        1, "replicas that must hold a publish before it returns, when the broker has replicas (0: none)"
    )
    publish_wait_timeout: float = _setting(1.0, "seconds a publish waits for those replicas (WAIT)")
    publish_waitaof: bool = _setting(
        False,
        "1: confirm with `WAITAOF` (the replicas fsynced the publish to their append-only file) where the "
        "primary has it (7.2+) and appendonly is on. Off by default: under `appendfsync everysec` a WAITAOF "
        "returns at the replicas' next fsync, about 1 s per publish; `WAIT` (a replica holds it) already "
        "keeps an acknowledged publish through a failover, WAITAOF also through every node losing power",
    )
    publish_waitaof_timeout: float = _setting(
        2.0, "seconds a publish waits for those replicas' fsync (WAITAOF); keep it above their fsync period"
    )
    publish_retry_seconds: float = _setting(
        30.0, "seconds a failed or unconfirmed publish is tried again (through the current primary)"
    )
    heartbeat_interval: float = _setting(
        5.0, "seconds between heartbeats, lease writes and health-file writes"
    )
    heartbeat_ttl: float = _setting(20.0, "seconds a heartbeat and the fetch lease live")
    state_dir: str = _setting("/tmp/queueworker", "the probes' health file's directory (one worker each)")  # noqa: S108
    liveness_max_age: float | None = _setting(None, "seconds; default max(60, 4 x heartbeat interval)")
    readiness_max_age: float | None = _setting(None, "seconds; default 3 x heartbeat interval + 1")
    metrics_port: str = _setting("9809", "task metrics port; 0 or `off` serves none")
    metrics_addr: str = _setting("0.0.0.0", "task metrics address")
    metrics_flush_interval: float = _setting(1.0, "seconds between metric flushes of each process")
    beat_lock_timeout: float = _setting(30.0, "seconds a killed beat's lock keeps another beat waiting")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WorkerSettings:
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        problems: list[str] = []
        for f in dataclasses.fields(cls):
            raw = env.get(PREFIX + f.name.upper(), "").strip()
            if not raw:
                continue
            try:
                values[f.name] = _convert(str(f.type), raw)
            except ValueError as exc:
                shown = "(hidden)" if f.metadata["secret"] else repr(raw)
                problems.append(f"{PREFIX}{f.name.upper()}={shown}: {exc}")
        settings = cls(**values)
        problems += settings.problems()
        if problems:
            raise ValueError("; ".join(problems))
        return settings

    def problems(self) -> list[str]:
        found = []
        if self.visibility_timeout <= 0:
            found.append(f"QUEUEWORKER_VISIBILITY_TIMEOUT must be > 0 (got {self.visibility_timeout:g})")
        positive = (
            "heartbeat_interval",
            "heartbeat_ttl",
            "publish_wait_timeout",
            "publish_waitaof_timeout",
            "broker_socket_timeout",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                found.append(f"{PREFIX}{name.upper()} must be > 0")
        return found

    def broker_env(self) -> dict[str, str]:
        """The sentinel variables as the broker layer's parse() reads them."""
        return {
            "QUEUEWORKER_SENTINEL_MASTER": self.sentinel_master,
            "QUEUEWORKER_SENTINEL_PASSWORD": self.sentinel_password or "",
        }

    @property
    def liveness_age(self) -> float:
        return self.liveness_max_age or max(60.0, 4 * self.heartbeat_interval)

    @property
    def readiness_age(self) -> float:
        return self.readiness_max_age or 3 * self.heartbeat_interval + 1


def _convert(kind: str, raw: str) -> Any:
    if kind.startswith("bool"):
        if raw.lower() not in ("1", "0", "true", "false", "yes", "no"):
            raise ValueError("use 1 or 0")
        return raw.lower() in ("1", "true", "yes")
    if kind.startswith("int"):
        try:
            return int(float(raw))
        except ValueError:
            raise ValueError("not a number") from None
    if kind.startswith("float"):
        try:
            return float(raw)
        except ValueError:
            raise ValueError("not a number") from None
    return raw


_current: list[WorkerSettings] = []


def use(settings: WorkerSettings) -> WorkerSettings:
    """Make `settings` this process's (make_app calls it)."""
    _current[:] = [settings]
    return settings


def current() -> WorkerSettings:
    """The settings make_app read in this process (read from the environment if none was made)."""
    if not _current:
        use(WorkerSettings.from_env())
    return _current[0]


def markdown() -> str:
    """The docs table (docs/worker-settings.md)."""
    lines = [
        "# Worker settings",
        "",
        "Generated from `workers/queueworker/worker/settings.py` by",
        "`python -m queueworker.worker.settings > docs/worker-settings.md`; a unit test checks they agree.",
        "make_app reads these once, when the app is made.",
        "",
        "| variable | type | default | meaning |",
        "|---|---|---|---|",
    ]
    for f in dataclasses.fields(WorkerSettings):
        kind = str(f.type).replace(" | None", "").replace("str", "text")
        default = "(none)" if f.default is None else f"`{f.default}`"
        lines.append(f"| `{PREFIX}{f.name.upper()}` | {kind} | {default} | {f.metadata['doc']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
