"""The fault matrix, long form: every fault of tests/support/faultmatrix.py for ROUNDS rounds (10 by
default) under a concurrent load, Redis frozen 60 s for SIGSTOP, with the atomic fetch and, as the baseline
measured in the same run, the same workers consuming the stock kombu way (QUEUEWORKER_ATOMIC_FETCH=0:
BRPOP, then record). Prints every round's published/completed/lost/run-twice and a summary per fault.
Takes about an hour per mode at the defaults; not part of `make bench` (too long), run it on purpose:

    python -m bench.faults [--rounds 10] [--stop-seconds 60] [--pool prefork] [--faults a,b]
                           [--modes atomic,stock]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [p for p in (str(REPO), str(REPO / "workers")) if p not in sys.path]

from tests.support.faultmatrix import FAULTS, Matrix  # noqa: E402


def run_mode(atomic: bool, faults: list[str], rounds: int, stop_seconds: float, pool: str) -> dict[str, Any]:
    saved = os.environ.get("QUEUEWORKER_ATOMIC_FETCH")
    os.environ["QUEUEWORKER_ATOMIC_FETCH"] = "1" if atomic else "0"  # the workers inherit it
    matrix = Matrix(Path(tempfile.mkdtemp(prefix="qw-faults-")), pool=pool, stop_seconds=stop_seconds)
    try:
        matrix.start()
        for number in range(1, rounds + 1):
            for fault in faults:
                matrix.run_round(fault, number)
    finally:
        matrix.stop()
        if saved is None:
            os.environ.pop("QUEUEWORKER_ATOMIC_FETCH", None)
        else:
            os.environ["QUEUEWORKER_ATOMIC_FETCH"] = saved
    summary: dict[str, Any] = {}
    for fault in faults:
        mine = [r for r in matrix.rounds if r.fault == fault]
        summary[fault] = {
            "rounds": len(mine),
            "published": sum(r.tally.published for r in mine),
            "lost": sum(r.tally.lost for r in mine),
            "rounds_with_loss": sum(1 for r in mine if r.tally.lost),
            "run_twice": sum(r.tally.twice for r in mine),
            "worker_died": sum(1 for r in mine if not r.workers_ok),
        }
    return summary


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.faults")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--stop-seconds", type=float, default=60.0)
    parser.add_argument("--pool", default="prefork", choices=["prefork", "threads", "solo"])
    parser.add_argument(
        "--faults", default=",".join(FAULTS), help=f"comma-separated, from {', '.join(FAULTS)}"
    )
    parser.add_argument(
        "--modes",
        default="atomic,stock",
        help="atomic (the atomic fetch), stock (QUEUEWORKER_ATOMIC_FETCH=0, the baseline)",
    )
    args = parser.parse_args(argv)
    faults = [f.strip() for f in args.faults.split(",") if f.strip()]
    unknown = [f for f in faults if f not in FAULTS]
    if unknown:
        parser.error(f"--faults: unknown {', '.join(unknown)}; known: {', '.join(FAULTS)}")
    result: dict[str, Any] = {"rounds": args.rounds, "stop_seconds": args.stop_seconds, "pool": args.pool}
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or any(m not in ("atomic", "stock") for m in modes):
        parser.error(f"--modes {args.modes!r}: use atomic, stock or both (comma-separated)")
    if "atomic" in modes:
        result["atomic_fetch"] = run_mode(True, faults, args.rounds, args.stop_seconds, args.pool)
    if "stock" in modes:
        result["stock_brpop_baseline"] = run_mode(False, faults, args.rounds, args.stop_seconds, args.pool)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
