"""`qw status`: the table `qw up` shows, printed once, from any terminal."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "status",
        help="print the local-mode table once (backlog, waits, workers, decisions)",
        description="Print what `qw up` shows: per QueueWorker the backlog, oldest wait vs "
        "target, workers running/desired, busy slots, throughput and the last "
        "scale decision. Without a running `qw up`, the queues alone.",
    )
    p.add_argument(
        "--redis-url", help="Redis to read (default: the embedded Redis of `qw up` in --state-dir)"
    )
    p.add_argument(
        "--state-dir",
        dest="workdir",
        metavar="DIR",
        help="state directory of `qw up` (default .qw, or $QW_STATE_DIR)",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def queue_rows(client: Any) -> list[Any]:
    """Rows from the queue stats alone (no `qw up` publishing): one per discovered queue."""
    from queueworker.broker.stats import queue_stats
    from queueworker.local.view import Row

    stats = queue_stats(client, (), discover=True)
    return [
        Row(
            name=f"(queue {q})",
            queues=(q,),
            mode="-",
            backlog=s.depth,
            reserved=s.reserved,
            oldest_wait=s.oldest_wait,
            target_wait=s.target_wait or 0.0,
            running=s.workers,
            desired=None,
            busy_slots=s.busy_slots,
            total_slots=s.total_slots,
            throughput=None,
            completed=s.completed_total,
            decision="no `qw up` running on this Redis",
        )
        for q, s in sorted(stats.items())
    ]


def run(args: argparse.Namespace) -> int:
    from queueworker.cli.extras import require_local

    if not require_local("status", "rich"):
        return 2
    import redis
    from rich.console import Console

    from queueworker.broker.client import connect
    from queueworker.local.connect import NotRunning, find_redis
    from queueworker.local.view import read, table

    if args.redis_url and not args.redis_url.startswith(("redis://", "rediss://", "unix://", "sentinel://")):
        print("qw status: --redis-url: expected redis://[:PASSWORD@]HOST:PORT/DB", file=sys.stderr)
        return 2
    try:
        url, shown, _ = find_redis(args.redis_url, args.workdir)
    except NotRunning as exc:
        print(f"qw status: {exc}", file=sys.stderr)
        return 1
    client = connect(url, timeout=5)
    try:
        rows, meta = read(client)
        if meta is None:
            rows = queue_rows(client)
    except (redis.RedisError, OSError) as exc:
        print(f"qw status: Redis {shown} unreachable: {type(exc).__name__}", file=sys.stderr)
        return 1
    finally:
        client.close()
    if args.json:
        print(
            json.dumps({"redis": shown, "qw_up": meta, "queueworkers": [r.to_json() for r in rows]}, indent=2)
        )
        return 0
    title = f"Redis {shown}" + ("" if meta else " (no `qw up` publishing here: queues only)")
    console = Console(highlight=False)
    if not console.is_terminal:  # a pipe or a file: do not fold the table into 80 columns
        console = Console(highlight=False, width=200)
    console.print(table(rows, title=title))
    return 0
