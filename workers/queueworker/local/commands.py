"""What local mode runs for a QueueWorker: the `celery worker` command line and environment (the same
settings the operator puts in a worker pod: queueworker.contract), plus the beat and exporter commands.
Pure functions.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from queueworker.api.spec import QueueWorker
from queueworker.contract import beat_args, worker_args, worker_env

ROOT_WARNING_FILTER = "ignore:You're running the worker with superuser privileges"


@dataclass(frozen=True)
class LocalContext:
    redis_url: str
    routes_file: Path
    workdir: Path
    cwd: Path
    #: Directories given with -f: on every worker's import path, after the manifest's own directory.
    roots: tuple[Path, ...] = ()
    log_level: str = "warning"


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
    """`python -m celery --quiet` with the shared worker arguments, and the environment: this machine's
    (Redis, routes file, import path), the shared worker settings, then the spec's literal `env` entries,
    which replace any of those of the same name (as in a pod); last what must differ between the workers
    sharing this machine: each one's metrics port and health file's directory."""
    argv = [sys.executable, "-m", "celery", "--quiet", *worker_args(qw, hostname(qw, index), ctx.log_level)]
    env = base_env(ctx, manifest_dir, environ)
    env.update(worker_env(qw, metrics_port=metrics_port, routes_file=str(ctx.routes_file)))
    env.update(spec_env(qw)[0])
    env["QUEUEWORKER_METRICS_PORT"] = str(metrics_port)
    env["QUEUEWORKER_STATE_DIR"] = str(ctx.workdir / "workers" / f"{qw.name}-{index}")
    return argv, env


def beat_command(ctx: LocalContext, environ: Mapping[str, str]) -> tuple[list[str], dict[str, str]]:
    """The shared beat arguments; its (unused by redbeat) schedule file in the workdir, no pidfile."""
    argv = [sys.executable, "-m", "celery", "--quiet", *beat_args(ctx.log_level)]
    argv += ["--schedule", str(ctx.workdir / "celerybeat-schedule"), "--pidfile", ""]
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
