"""How far the burst-trace result carries: other task lengths, other pod start times, other seeds, and the
wait/cost frontier of builtin-60 and keda-tuned when their one latency knob is turned.

Every case runs its baselines again under the same conditions (same arrivals, service times and start
delay), so each figure is a ratio measured in the same run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

import numpy as np

from bench.autoscale.baselines import TUNED_DOWN_WINDOW, KedaTuned
from bench.autoscale.policies import Builtin
from bench.autoscale.run import CONFIG, SEEDS, Row, run_all, summarise
from bench.autoscale.sim import START_DELAY, Controller, Simulation
from bench.autoscale.traces import SERVICE_MEAN, TRACES, arrivals, service_times

HEADLINE = "burst"
#: Mean task seconds and pod start seconds of the robustness table (the arrival rate keeps the busy slots).
LENGTHS = (1.0, 3.0, 10.0, 30.0, 120.0)
STARTS = (5.0, 10.0, 20.0, 40.0)
#: Seeds other than SEEDS, to check that nothing is tuned to those.
OTHER_SEEDS = tuple(range(6, 36))
#: The policies of each robustness case (builtin-fixed: the default 10 s start time, never measured).
CASE_POLICIES = ("builtin", "builtin-60", "builtin-fixed", "keda", "keda-tuned", "latency")
#: The frontier: builtin-60's targetWaitSeconds, keda-tuned's listLength.
TARGETS = (30.0, 45.0, 60.0, 75.0, 90.0)
LIST_LENGTHS = (2.0, 3.0, 4.0, 5.0, 6.0, 8.0)

COLUMNS = (
    ("builtin", "keda"),
    ("builtin-fixed", "keda"),
    ("builtin-60", "keda-tuned"),
    ("builtin", "keda-tuned"),
    ("latency", "keda-tuned"),
)


@dataclass(frozen=True)
class Case:
    label: str
    rows: dict[str, Row]

    def ratios(self, policy: str, base: str) -> tuple[float, float]:
        a, b = self.rows[policy], self.rows[base]
        return a.p95 / b.p95, a.cost / b.cost


def case(
    label: str,
    service_mean: float = SERVICE_MEAN,
    start_delay: float = START_DELAY,
    seeds: tuple[int, ...] = SEEDS,
    policies: tuple[str, ...] = CASE_POLICIES,
) -> Case:
    rows, _ = run_all((HEADLINE,), seeds, CONFIG, service_mean, policies, start_delay)
    return Case(label, {r.policy: r for r in rows})


def table(cases: list[Case]) -> str:
    """p95 wait and cost ratios (p95 / cost) of each compared pair, one line per case."""
    head = f"{'case':<22}" + "".join(f" {f'{a}/{b}':>27}" for a, b in COLUMNS)
    lines = [head, "-" * len(head)]
    for c in cases:
        cells = []
        for a, b in COLUMNS:
            if a in c.rows and b in c.rows:
                p, k = c.ratios(a, b)
                cells.append(f"{p:.2f} / {k:.2f}")
            else:
                cells.append("-")
        lines.append(f"{c.label:<22}" + "".join(f" {cell:>27}" for cell in cells))
    return "\n".join(lines)


def lengths() -> list[Case]:
    return [case(f"tasks {m:g}s, start 10s", service_mean=m) for m in LENGTHS]


def starts() -> list[Case]:
    return [case(f"tasks 10s, start {d:g}s", start_delay=d) for d in STARTS]


def other_seeds() -> Case:
    return case(
        f"seeds {OTHER_SEEDS[0]}-{OTHER_SEEDS[-1]}",
        seeds=OTHER_SEEDS,
        policies=("builtin", "builtin-60", "keda", "keda-tuned", "latency"),
    )


def _burst(label: str, make: Callable[[], Controller]) -> Row:
    """The burst trace over SEEDS under one controller, as `run.simulate` runs it."""
    results = []
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        arrival = arrivals(TRACES[HEADLINE], rng)
        service = service_times(len(arrival), rng)
        controller = make()
        sim = Simulation(
            arrival,
            service,
            controller,
            duration=TRACES[HEADLINE].duration,
            concurrency=CONFIG.slots_per_replica,
            initial_replicas=max(CONFIG.min_replicas, 1),
            phase=float(rng.uniform(0.0, controller.interval)),
        )
        results.append(sim.run())
    return summarise(HEADLINE, label, results)


def _builtin_60(target: float) -> Controller:
    return Builtin(replace(CONFIG, scale_down_delay_seconds=TUNED_DOWN_WINDOW, target_wait_seconds=target))


def frontier() -> tuple[list[Row], list[Row]]:
    """builtin-60 with other targetWaitSeconds, and keda-tuned with other listLengths, on the burst trace
    (the same seeds and arrivals as the main table)."""
    builtin = [_burst(f"target {t:g}s", partial(_builtin_60, t)) for t in TARGETS]
    keda = [
        _burst(f"listLength {n:g}", partial(KedaTuned, CONFIG.min_replicas, CONFIG.max_replicas, n))
        for n in LIST_LENGTHS
    ]
    return builtin, keda


def frontier_table(builtin: list[Row], keda: list[Row], base: Row) -> str:
    lines = [f"{'setting':<24} {'p95 s':>7} {'worker-h':>9} {'p95/tuned':>10} {'cost/tuned':>11}"]
    for label, rows in (("builtin-60", builtin), ("keda-tuned", keda)):
        for r in rows:
            lines.append(
                f"{label + ', ' + r.policy:<24} {r.p95:>7.1f} {r.cost:>9.2f}"
                f" {r.p95 / base.p95:>10.2f} {r.cost / base.cost:>11.2f}"
            )
    return "\n".join(lines)
