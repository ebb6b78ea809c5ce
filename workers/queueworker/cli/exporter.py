"""`qw exporter`: serve queue metrics for Prometheus on /metrics (and /healthz for probes)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from typing import Any

DEFAULT_REDIS_URL = "redis://localhost:6379/0"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "exporter",
        help="serve queue metrics (depth, reserved, oldest wait, workers) for Prometheus",
        description="Probe Redis at each scrape and serve queue metrics on /metrics. Without --queues, "
        "queues are discovered from kombu's bindings and the operator's wait targets.",
    )
    parser.add_argument(
        "--redis-url",
        default=None,
        help="broker URL; default $QUEUEWORKER_REDIS_URL, then $QUEUEWORKER_BROKER_URL, then "
        f"{DEFAULT_REDIS_URL}. Prefer the environment: a password on a command line shows in `ps`",
    )
    parser.add_argument("--port", type=int, default=9808, help="HTTP port (default 9808)")
    parser.add_argument("--address", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    parser.add_argument(
        "--queues", nargs="+", default=[], metavar="Q", help="queues to read (space- or comma-separated)"
    )
    parser.add_argument(
        "--discover",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also read every queue bound on the broker (default: on without --queues)",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    parser.set_defaults(func=run)


def resolve(args: argparse.Namespace) -> tuple[str, list[str], bool]:
    """(redis URL, queues, discover) from the arguments and the environment."""
    env = os.environ
    url = args.redis_url or env.get("QUEUEWORKER_REDIS_URL") or env.get("QUEUEWORKER_BROKER_URL")
    queues = [q for item in args.queues for q in item.split(",") if q]
    discover = args.discover if args.discover is not None else not queues
    return url or DEFAULT_REDIS_URL, list(dict.fromkeys(queues)), discover


def run(args: argparse.Namespace) -> int:
    from queueworker.contract import redact
    from queueworker.exporter import Exporter

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    url, queues, discover = resolve(args)
    if not queues and not discover:
        raise SystemExit("qw exporter: nothing to read: give --queues or allow --discover")
    exporter = Exporter(url, queues, discover, port=args.port, address=args.address)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    exporter.start()
    logging.getLogger("queueworker.exporter").info(
        "serving /metrics on %s:%d for %s (%s)",
        args.address,
        exporter.port,
        redact(url),
        f"{len(queues)} named queue(s)" + (", discovery on" if discover else ""),
    )
    stop.wait()
    exporter.stop()
    return 0
