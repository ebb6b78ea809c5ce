"""`python -m bench.autoscale`: every trace under every policy, the table, the plots, the burst verdicts
against KEDA's defaults and against a tuned KEDA, and the robustness tables (task lengths, pod start
times, other seeds, the wait/cost frontier)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.autoscale import robustness
from bench.autoscale.baselines import TUNED_DOWN_WINDOW, TUNED_POLLING, tuned_list_length
from bench.autoscale.report import table
from bench.autoscale.run import CONFIG, SEEDS, Row, run_all
from bench.autoscale.sim import START_DELAY
from bench.autoscale.traces import SERVICE_MEAN, SERVICE_SIGMA, TRACES

OUT_DIR = Path(__file__).resolve().parent.parent / "out"
HEADLINE = "burst"
#: Targets for the headline trace against KEDA's defaults: builtin p95 wait at most half KEDA's, at most
#: 10 % more cost.
P95_TARGET = 0.5
COST_TARGET = 1.1
#: Targets against keda-tuned (builtin-60, the same scale-down window): p95 at most 0.8x, cost at most 1.0x.
TUNED_P95_TARGET = 0.8
TUNED_COST_TARGET = 1.0


def _ratios(rows: list[Row], trace: str, policy: str = "builtin", base: str = "keda") -> tuple[float, float]:
    by = {(r.trace, r.policy): r for r in rows}
    a, b = by[(trace, policy)], by[(trace, base)]
    return a.p95 / b.p95, a.cost / b.cost


def _describe() -> None:
    print(
        f"QueueWorker: minReplicas {CONFIG.min_replicas}, maxReplicas {CONFIG.max_replicas},"
        f" targetWaitSeconds {CONFIG.target_wait_seconds:g}, scaleDownDelaySeconds"
        f" {CONFIG.scale_down_delay_seconds:g}, concurrency {CONFIG.slots_per_replica}"
        " (the spec defaults; the same bounds for every policy)"
    )
    length = tuned_list_length(CONFIG.slots_per_replica, CONFIG.target_wait_seconds, SERVICE_MEAN)
    print(
        "policies: builtin (the operator's; learns the pod start time), builtin-60 (the same with"
        f" scaleDownDelaySeconds {TUNED_DOWN_WINDOW:g}), keda (ScaledObject defaults, redis listLength 5),"
        f" keda-tuned (pollingInterval {TUNED_POLLING:g}s, listLength {length:g} = concurrency x target /"
        f" task seconds, scale-up 100 % or 4 pods per 15 s, scale-down window {TUNED_DOWN_WINDOW:g}s),"
        " latency (replicas x oldest wait / target every 10 s), hpa (autoscaling/v2 defaults on"
        " celery_queue_length, 5 per pod), oracle (knows the trace in advance; not an autoscaler)"
    )
    print(
        f"service time lognormal mean {SERVICE_MEAN:g}s sigma {SERVICE_SIGMA:g}; pod start {START_DELAY:g}s;"
        f" seeds {list(SEEDS)}; waits pooled over seeds, worker-hours summed over seeds"
    )
    for trace in TRACES.values():
        print(f"  {trace.name:<11} {trace.description}")


def _verdict(name: str, p95: float, cost: float, p95_target: float, cost_target: float) -> bool:
    met = p95 <= p95_target and cost <= cost_target
    print(
        f"{HEADLINE}: p95 wait {name} = {p95:.2f} (target <= {p95_target}), cost {name} = {cost:.2f}"
        f" (target <= {cost_target}): {'targets met' if met else 'targets NOT met'}"
    )
    return met


def main(out_dir: Path = OUT_DIR) -> dict[str, Any]:
    from bench.autoscale.report import plot

    started = time.perf_counter()
    print(
        "== autoscale: simulated queue, builtin policy vs KEDA (defaults and tuned), HPA, a latency scaler =="
    )
    _describe()
    rows, first = run_all()
    print(table(rows))
    for name, trace in TRACES.items():
        results = {p: first[(name, p)] for (t, p) in first if t == name}
        print(f"plot: {plot(name, results, out_dir, trace.description)}")
    p95_ratio, cost_ratio = _ratios(rows, HEADLINE)
    met = _verdict("builtin/keda", p95_ratio, cost_ratio, P95_TARGET, COST_TARGET)
    tuned_p95, tuned_cost = _ratios(rows, HEADLINE, "builtin-60", "keda-tuned")
    tuned_met = _verdict("builtin-60/keda-tuned", tuned_p95, tuned_cost, TUNED_P95_TARGET, TUNED_COST_TARGET)
    others = {t: _ratios(rows, t, "builtin-60", "keda-tuned") for t in TRACES if t != HEADLINE}

    print(
        f"-- robustness on the {HEADLINE} trace: p95 / cost ratios; other task lengths keep the busy slots"
        " (the arrival rate scales), keda-tuned's listLength follows the task length; builtin-fixed"
        f" assumes a {CONFIG.start_delay_seconds:g}s start instead of measuring it --"
    )
    cases = robustness.lengths() + robustness.starts()
    seeds = robustness.other_seeds()
    print(robustness.table([*cases, seeds]))
    print(
        f"-- frontier on the {HEADLINE} trace: builtin-60 with other targetWaitSeconds, keda-tuned with"
        " other listLengths, against keda-tuned as in the table --"
    )
    builtin, keda = robustness.frontier()
    base = next(r for r in rows if r.trace == HEADLINE and r.policy == "keda-tuned")
    print(robustness.frontier_table(builtin, keda, base))
    print(f"autoscale simulation took {time.perf_counter() - started:.1f}s")
    return {
        "trace": HEADLINE,
        "p95_wait_ratio": p95_ratio,
        "cost_ratio": cost_ratio,
        "targets_met": met,
        "tuned_p95_wait_ratio": tuned_p95,
        "tuned_cost_ratio": tuned_cost,
        "tuned_targets_met": tuned_met,
        "tuned_other_traces": others,
        "rows": rows,
        "robustness": {
            c.label: {
                f"{a}/{b}": c.ratios(a, b) for a, b in robustness.COLUMNS if a in c.rows and b in c.rows
            }
            for c in [*cases, seeds]
        },
    }
