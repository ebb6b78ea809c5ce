"""`qw probe liveness|readiness`: the worker Deployment's exec probes (see queueworker.worker.health)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "probe",
        help="liveness/readiness of the worker in this container (exit 0 ok, 1 failed)",
        description="Reads the worker's health file (QUEUEWORKER_STATE_DIR/worker.json); no broker "
        "round trip, no broadcast.",
    )
    parser.add_argument("kind", choices=("liveness", "readiness"))
    parser.add_argument(
        "--state-file",
        dest="health_file",
        metavar="FILE",
        type=Path,
        default=None,
        help="the health file (default: $QUEUEWORKER_STATE_DIR/worker.json, /tmp/queueworker)",
    )
    parser.add_argument(
        "--max-age",
        type=float,
        default=None,
        help="seconds of silence tolerated (default: the bound the worker wrote)",
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from queueworker.worker.health import run

    code, line = run(args.kind, args.health_file, args.max_age)
    print(line)
    return code
