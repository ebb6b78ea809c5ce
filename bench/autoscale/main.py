"""`python -m bench.autoscale`: every trace under every policy, the table, the plots and the burst verdict."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.autoscale.report import plot, table
from bench.autoscale.run import CONFIG, SEEDS, run_all
from bench.autoscale.sim import START_DELAY
from bench.autoscale.traces import SERVICE_MEAN, SERVICE_SIGMA, TRACES

OUT_DIR = Path(__file__).resolve().parent.parent / "out"
HEADLINE = "burst"
#: Targets for the headline trace: builtin p95 wait at most half KEDA's, at most 10 % more cost.
P95_TARGET = 0.5
COST_TARGET = 1.1
#: Service-time means (seconds) for the sensitivity table on the headline trace.
SENSITIVITY = (3.0, 30.0)


def _ratios(rows: list[Any], trace: str) -> tuple[float, float]:
    by = {(r.trace, r.policy): r for r in rows}
    builtin, keda = by[(trace, "builtin")], by[(trace, "keda")]
    return builtin.p95 / keda.p95, builtin.cost / keda.cost


def main(out_dir: Path = OUT_DIR) -> dict[str, Any]:
    started = time.perf_counter()
    print("== autoscale: simulated queue, builtin policy vs KEDA and HPA defaults ==")
    print(
        f"QueueWorker: minReplicas {CONFIG.min_replicas}, maxReplicas {CONFIG.max_replicas},"
        f" targetWaitSeconds {CONFIG.target_wait_seconds:g}, scaleDownDelaySeconds"
        f" {CONFIG.scale_down_delay_seconds:g}, concurrency {CONFIG.slots_per_replica}"
        " (the spec defaults; the same bounds for every policy)"
    )
    print("policies: builtin (the operator's), keda (ScaledObject defaults, redis listLength 5),"
          " hpa (autoscaling/v2 defaults on celery_queue_length, 5 per pod), oracle (a reference that"
          " knows the trace in advance, under the same bounds and scale-down delay; not an autoscaler)")
    print(
        f"service time lognormal mean {SERVICE_MEAN:g}s sigma {SERVICE_SIGMA:g}; pod start {START_DELAY:g}s;"
        f" seeds {list(SEEDS)}; waits pooled over seeds, worker-hours summed over seeds"
    )
    for trace in TRACES.values():
        print(f"  {trace.name:<11} {trace.description}")
    rows, first = run_all()
    print(table(rows))
    for name, trace in TRACES.items():
        results = {p: first[(name, p)] for (t, p) in first if t == name}
        path = plot(name, results, out_dir, trace.description)
        print(f"plot: {path}")
    p95_ratio, cost_ratio = _ratios(rows, HEADLINE)
    met = p95_ratio <= P95_TARGET and cost_ratio <= COST_TARGET
    print(
        f"{HEADLINE}: p95 wait builtin/keda = {p95_ratio:.2f} (target <= {P95_TARGET}), cost builtin/keda ="
        f" {cost_ratio:.2f} (target <= {COST_TARGET}): {'targets met' if met else 'targets NOT met'}"
    )
    print(f"-- sensitivity: {HEADLINE} trace with other mean service times, arrival rates scaled to keep the"
          " same busy slots (KEDA's listLength 5 means a different wait for each task length) --")
    sensitivity = {}
    for mean in SENSITIVITY:
        srows, _ = run_all((HEADLINE,), service_mean=mean)
        sp, sc = _ratios(srows, HEADLINE)
        sensitivity[mean] = (sp, sc)
        print(f"service mean {mean:g}s:")
        print(table(srows))
    print(f"autoscale simulation took {time.perf_counter() - started:.1f}s")
    return {
        "trace": HEADLINE,
        "p95_wait_ratio": p95_ratio,
        "cost_ratio": cost_ratio,
        "targets_met": met,
        "rows": rows,
        "sensitivity": sensitivity,
    }
