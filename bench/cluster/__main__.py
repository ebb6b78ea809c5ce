"""`make bench-cluster`: autoscaling measured on the local cluster against a real KEDA, and the simulation
checked against it. Needs the cluster and the platform: `make cluster-up deploy` (as root), nothing else
running there (the e2e suite's release uninstalled).

A producer pod replays one burst trace (bench/cluster/trace.py) into one queue per policy, each policy's
workers the same (bench/cluster/policies.py): builtin (the operator), keda (a real KEDA at its defaults),
keda-tuned (KEDA tuned as the tuned baseline of docs/performance.md) and hpa (`mode: hpa` through
prometheus-adapter).
builtin-60 (scaleDownDelaySeconds 60, keda-tuned's counterpart), keda and keda-tuned run at once, on the
same arrivals; builtin and hpa run after them, once the cluster's External-metrics API is handed to the
adapter (one provider per cluster: `hack.cluster external-metrics`).
It prints a line per policy (bench/cluster/measure.py), the simulation's replay of the same arrivals
beside it (bench/cluster/replay.py) with how far off it is, the KEDA version, and

    RESULT_REAL p95_wait_ratio=<builtin-60/keda-tuned> cost_ratio=<builtin-60/keda-tuned>

    python -m bench.cluster [--policies builtin-60,keda,keda-tuned,builtin,hpa] [--seed 1] [--namespace NS]
"""

from __future__ import annotations

import argparse
import signal

from bench.cluster import measure, trace
from bench.cluster.policies import MIN_REPLICAS, POLICIES, Policy
from bench.cluster.report import load, report, result_line, say
from bench.cluster.run import Bench, cluster, hand_external_metrics, keda_version

#: The policies run at once first, on KEDA's External-metrics API; then the others (hpa on the adapter's).
FIRST = ("builtin-60", "keda", "keda-tuned", "builtin-60-t60", "keda-tuned-3", "keda-tuned-12")


def report_only(args: argparse.Namespace) -> int:
    sample = trace.sample(args.seed)
    results = {}
    interval = 5.0
    for name in args.policies.split(","):
        if (kept := load(name)) is None:
            continue
        start, track, records, interval = kept
        burst = (trace.BURST_START, sample.burst_end)
        results[name] = measure.figures(track, records, start, burst, trace.DURATION, MIN_REPLICAS)
    report(results, sample, interval)
    result_line(results)
    return 0


def phase(bench: Bench, group: list[Policy], sample: trace.Replay) -> dict[str, measure.Figures]:
    figures = {k: v[0] for k, v in bench.run(group, sample).items()}
    for name, fig in figures.items():
        say(f"  {name:<11} {fig.line()}")
    return figures


def interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}: cleaning up")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__.split("\n\n")[0])
    parser.add_argument("--policies", default="builtin-60,keda,keda-tuned,builtin,hpa")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--namespace", default="queueworker-system", help="where `make deploy` installed the chart"
    )
    parser.add_argument(
        "--report-only", action="store_true", help="no run: the figures again from the last run's bench/out"
    )
    args = parser.parse_args(argv)
    if args.report_only:
        return report_only(args)
    try:
        return run(args)
    except KeyboardInterrupt as exc:
        say(f"bench-cluster interrupted ({exc}); what it created is deleted")
        return 130


def run(args: argparse.Namespace) -> int:
    wanted = [POLICIES[n] for n in args.policies.split(",") if n]
    c = cluster()
    signal.signal(signal.SIGTERM, interrupted)
    bench = Bench(c, args.namespace)
    bench.clean()
    sample = trace.sample(args.seed)
    say(
        f"bench-cluster: trace {trace.TRACE.description}, seed {args.seed}: "
        f"{len(sample.arrival)} tasks per policy"
    )
    say(f"KEDA version: {keda_version(c)}")
    results: dict[str, measure.Figures] = {}
    first = [p for p in wanted if p.name in FIRST]
    second = [p for p in wanted if p.name not in FIRST]
    try:
        if first:
            results |= phase(bench, first, sample)
        if second:
            adapter = any(p.name == "hpa" for p in second)
            if adapter:
                hand_external_metrics("adapter")
            try:
                results |= phase(bench, second, sample)
            finally:
                if adapter:
                    hand_external_metrics("keda")
    finally:
        bench.tear_down_shared()
    report(results, sample, bench.autoscale_interval())
    result_line(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
