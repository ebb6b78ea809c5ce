"""What local mode runs for a QueueWorker: the `celery worker` command line and environment (the same
settings the operator puts in a worker pod), plus the beat and exporter commands. Pure functions.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from queueworker.spec import QueueWorker

BEAT_APP = "queueworker.beat_app:app"
ROOT_WARNING_FILTER = "ignore:You're running the worker with superuser privileges"


@dataclass(frozen=True)
class LocalContext:
    redis_url: str
    routes_file: Path
    state_dir: Path
    cwd: Path
    #: Directories given with -f: on every worker's import path, after the manifest's own directory.
    roots: tuple[Path, ...] = ()
    log_level: str = "warning"


def soft_shutdown_timeout(grace: float) -> float:
    """Time running tasks get on SIGTERM: the grace period minus a margin for Celery to requeue and exit."""
    return max(1.0, grace - min(10.0, max(3.0, grace * 0.25)))


def python_path(manifest_dir: Path | None, ctx: LocalContext, inherited: str | None) -> str:
    """The manifest's directory, the -f directories, then the current directory (what `celery -A` imports)."""
    parts = [str(p) for p in (manifest_dir, *ctx.roots, ctx.cwd) if p is not None]
    if inherited:
        parts.append(inherited)
    return os.pathsep.join(dict.fromkeys(parts))


def base_env(ctx: LocalContext, manifest_dir: Path | None, environ: Mapping[str, str]) -> dict[str, str]:
    env = dict(environ)
    env.update(
        {
            "QUEUEWORKER_BROKER_URL": ctx.redis_url,
            "QUEUEWORKER_REDIS_URL": ctx.redis_url,
            "QUEUEWORKER_ROUTES_FILE": str(ctx.routes_file),
            "PYTHONPATH": python_path(manifest_dir, ctx, environ.get("PYTHONPATH")),
            "PYTHONUNBUFFERED": "1",
        }
    )
    if os.geteuid() == 0:  # said once by `qw up`, not by every worker at every start
        env["PYTHONWARNINGS"] = ",".join(filter(None, [environ.get("PYTHONWARNINGS"), ROOT_WARNING_FILTER]))
    return env


def spec_env(qw: QueueWorker) -> tuple[dict[str, str], list[str]]:
    """The spec's `env` entries with a literal value; names of those that need Kubernetes (valueFrom)."""
    values: dict[str, str] = {}
    skipped: list[str] = []
    for item in qw.spec.env:
        name = str(item.get("name", ""))
        if "value" in item and name:
            values[name] = str(item["value"])
        elif name:
            skipped.append(name)
    return values, skipped


def hostname(qw: QueueWorker, index: int) -> str:
    return f"{qw.name}-{index}@{socket.gethostname()}"


def worker_command(
    qw: QueueWorker,
    index: int,
    ctx: LocalContext,
    *,
    manifest_dir: Path | None,
    metrics_port: int,
    environ: Mapping[str, str],
) -> tuple[list[str], dict[str, str]]:
    spec = qw.spec
    grace = spec.shutdown.grace_period_seconds
    argv = [
        sys.executable,
        "-m",
        "celery",
        "--quiet",
        "-A",
        spec.app,
        "worker",
        "-Q",
        ",".join(spec.queues),
        "--concurrency",
        str(spec.concurrency),
        "--pool",
        spec.pool,
        "--prefetch-multiplier",
        str(spec.prefetch_multiplier),
        "--hostname",
        hostname(qw, index),
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        ctx.log_level.upper(),
    ]
    if spec.max_tasks_per_child:
        argv += ["--max-tasks-per-child", str(spec.max_tasks_per_child)]
    env = base_env(ctx, manifest_dir, environ)
    env.update(spec_env(qw)[0])
    env.update(
        {
            "QUEUEWORKER_QUEUES": ",".join(spec.queues),
            "QUEUEWORKER_METRICS_PORT": str(metrics_port),
            "QUEUEWORKER_TARGET_WAIT_SECONDS": f"{spec.autoscaling.target_wait_seconds:g}",
            "QUEUEWORKER_PREFETCH_MULTIPLIER": str(spec.prefetch_multiplier),
            "QUEUEWORKER_SOFT_SHUTDOWN_TIMEOUT": f"{soft_shutdown_timeout(grace):g}",
            "QUEUEWORKER_STATE_DIR": str(ctx.state_dir / "workers" / f"{qw.name}-{index}"),
        }
    )
    return argv, env


def beat_command(ctx: LocalContext, environ: Mapping[str, str]) -> tuple[list[str], dict[str, str]]:
    argv = [
        sys.executable,
        "-m",
        "celery",
        "--quiet",
        "-A",
        BEAT_APP,
        "beat",
        "--scheduler",
        "redbeat.RedBeatScheduler",
        "--loglevel",
        ctx.log_level.upper(),
        "--schedule",
        str(ctx.state_dir / "celerybeat-schedule"),
        "--pidfile",
        "",
    ]
    return argv, base_env(ctx, None, environ)


def exporter_command(
    ctx: LocalContext, port: int, queues: Sequence[str], environ: Mapping[str, str]
) -> tuple[list[str], dict[str, str]]:
    """The exporter on 127.0.0.1:port for the local queues; the Redis URL goes by the environment."""
    argv = [
        sys.executable,
        "-m",
        "queueworker.cli",
        "exporter",
        "--port",
        str(port),
        "--address",
        "127.0.0.1",
    ]
    if queues:
        argv += ["--queues", ",".join(queues)]
    return argv, base_env(ctx, None, environ)
