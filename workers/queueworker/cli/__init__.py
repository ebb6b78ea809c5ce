"""The `qw` command. Each subcommand lives in queueworker.cli.<name> and defines
`register(subparsers)` (adds its parser, sets `func`) — heavy imports stay inside `func`.
Arguments more than one subcommand takes are in queueworker.cli.args."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence

COMMANDS = ("render", "up", "status", "enqueue", "exporter", "probe")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qw", description="QueueWorker: Celery workers, one manifest per queue."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"queueworker.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
