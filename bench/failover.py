"""Broker failover under load: every fault of tests/support/failover.py for ROUNDS rounds (10 by
default) on a Sentinel-managed Redis (a primary, two replicas, three sentinels), with make_app producers and
workers and, as the baseline measured in the same run, the same rounds on stock kombu's sentinel transport.
Prints, per fault and mode: published, acknowledged, ran, lost among acknowledged, ran twice, worker exits,
and the time each failover left the broker unusable (the longest gap between acknowledged publishes; p50,
p99). Takes about 20 s per round; not part of `make bench` (too long), run it on purpose:

    python -m bench.failover [--rounds 10] [--faults kill,stop,...] [--modes queueworker,stock] [--rate 40]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [p for p in (str(REPO), str(REPO / "workers")) if p not in sys.path]

from tests.support.failover import FAULTS, Failover, summary  # noqa: E402


def run_mode(stock: bool, faults: list[str], rounds: int, rate: float) -> dict[str, Any]:
    harness = Failover(Path(tempfile.mkdtemp(prefix="qw-failover-")), stock=stock, rate=rate)
    try:
        harness.start()
        for number in range(1, rounds + 1):
            for fault in faults:
                harness.run_round(fault, number)
    finally:
        harness.stop()
    return summary(harness.rounds)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.failover")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--faults", default=",".join(FAULTS))
    parser.add_argument("--modes", default="queueworker,stock")
    parser.add_argument("--rate", type=float, default=40.0, help="publishes per second")
    args = parser.parse_args(argv)
    faults = [f for f in args.faults.split(",") if f]
    unknown = set(faults) - set(FAULTS)
    if unknown:
        parser.error(f"unknown faults {sorted(unknown)}; known: {', '.join(FAULTS)}")
    result: dict[str, Any] = {}
    for mode in [m for m in args.modes.split(",") if m]:
        result[mode] = run_mode(mode == "stock", faults, args.rounds, args.rate)
    print("\nfault      mode         rounds published acknowledged ran lost-acked ran-twice exits  p50   p99")
    for mode, per_fault in result.items():
        for fault, s in per_fault.items():
            print(
                f"{fault:10s} {mode:12s} {s['rounds']:6d} {s['published']:9d} {s['acknowledged']:12d} "
                f"{s['ran']:5d} {s['lost_acknowledged']:10d} {s['ran_twice']:9d} {s['worker_exits']:5d} "
                f"{s['unusable_p50_s']:5.2f} {s['unusable_p99_s']:5.2f}"
            )
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
