"""The `qw` command. Each subcommand lives in queueworker.commands.<name> and defines
`register(subparsers)` (adds its parser, sets `func`) — heavy imports stay inside `func`."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMANDS = ("render", "up", "status", "enqueue", "exporter", "probe")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qw", description="QueueWorker: Celery workers, one manifest per queue."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"queueworker.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"queueworker.commands.{name}":
                raise
            continue
        module.register(sub)
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


if __name__ == "__main__":
    sys.exit(main())
