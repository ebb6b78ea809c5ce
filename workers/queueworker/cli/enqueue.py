"""`qw enqueue TASK [ARGS...]`: publish tasks by name (routed like any producer's, or to --queue)."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "enqueue",
        help="publish tasks by name to the local-mode Redis",
        description="Publish TASK(ARGS..., **KWARGS). Each ARG is JSON when it parses "
        '(2, 2.5, true, "s", [1,2]) and a string otherwise. Without --queue, '
        "the routes of the running `qw up` (or of -f manifests) pick the queue.",
    )
    p.add_argument("task", metavar="TASK", help="task name, e.g. tasks.add")
    p.add_argument("args", metavar="ARGS", nargs="*", help="positional arguments")
    p.add_argument("--kwargs", help="keyword arguments as a JSON object, e.g. '{\"x\": 1}'")
    p.add_argument("--queue", "-q", help="queue to publish to (default: by the routes)")
    p.add_argument("--count", "-n", type=int, default=1, help="how many copies to publish (default 1)")
    p.add_argument("--redis-url", help="Redis to publish to (default: the embedded Redis of `qw up`)")
    p.add_argument(
        "--state-dir",
        dest="workdir",
        metavar="DIR",
        help="state directory of `qw up` (default .qw, or $QW_STATE_DIR)",
    )
    p.add_argument(
        "-f",
        "--filename",
        dest="paths",
        action="append",
        metavar="FILE|DIR",
        help="take the routes from these manifests instead of the running `qw up`",
    )
    p.set_defaults(func=run)


def fail(message: str, code: int = 2) -> int:
    print(f"qw enqueue: {message}", file=sys.stderr)
    return code


def run(args: argparse.Namespace) -> int:
    import redis
    from kombu.exceptions import OperationalError

    from queueworker.local import workdir
    from queueworker.local.connect import NotRunning, find_redis
    from queueworker.local.publish import (
        PublishError,
        load_routes,
        parse_arg,
        parse_kwargs,
        publish,
        resolve_queue,
    )

    if args.count < 1:
        return fail(f"--count: must be >= 1 (got {args.count})")
    if args.redis_url and not args.redis_url.startswith(("redis://", "rediss://", "unix://", "sentinel://")):
        return fail("--redis-url: expected redis://[:PASSWORD@]HOST:PORT/DB")
    try:
        kwargs = parse_kwargs(args.kwargs)
        positional = [parse_arg(a) for a in args.args]
        if args.paths:
            from queueworker.api.routes import routes_document
            from queueworker.cli.up import load

            qws, errors = load(args.paths)
            if errors:
                for line in errors:
                    print(line, file=sys.stderr)
                return 2
            doc = routes_document([qw for qw, _ in qws])
            routes = [(str(r["pattern"]), str(r["queue"])) for r in doc["routes"]]
            where = ", ".join(args.paths)
        else:
            routes_path = workdir.routes_file(workdir.resolve(args.workdir))
            routes, where = load_routes(routes_path), str(routes_path)
        queue = resolve_queue(args.task, args.queue, routes, where)
    except PublishError as exc:
        return fail(str(exc))
    try:
        url, shown, _ = find_redis(args.redis_url, args.workdir)
    except NotRunning as exc:
        return fail(str(exc), 1)
    try:
        ids = publish(url, args.task, positional, kwargs, queue=queue, count=args.count)
    except (redis.RedisError, OperationalError, OSError) as exc:
        return fail(f"cannot publish to Redis {shown}: {type(exc).__name__}", 1)
    what = (
        f"{args.task}({', '.join([repr(a) for a in positional] + [f'{k}={v!r}' for k, v in kwargs.items()])})"
    )
    print(
        f"published {len(ids)} x {what} to queue {queue} on {shown}"
        + (f" (task id {ids[0]})" if len(ids) == 1 else "")
    )
    return 0
