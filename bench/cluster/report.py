"""What `make bench-cluster` prints and keeps: the figures per policy beside the simulation's replay of the
same arrivals, the RESULT_REAL line, and the raw data of a run (bench/out/cluster-<policy>.json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.cluster import measure, replay, trace


def say(text: str) -> None:
    print(text, flush=True)


OUT_DIR = Path(__file__).resolve().parent.parent / "out"


def keep(policy: str, start: float, track: measure.Track, records: list[str], interval: float) -> None:
    """The run's raw data, for a closer look: bench/out/cluster-<policy>.json."""
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    data = {
        "start": start,
        "samples": track.samples,
        "pods": track.pods,
        "records": records,
        "autoscale_interval": interval,
    }
    (OUT_DIR / f"cluster-{policy}.json").write_text(json.dumps(data))


def load(policy: str) -> tuple[float, measure.Track, list[str], float] | None:
    path = OUT_DIR / f"cluster-{policy}.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    track = measure.Track(
        "", "", [tuple(x) for x in data["samples"]], {k: tuple(v) for k, v in data["pods"].items()}
    )
    return float(data["start"]), track, list(data["records"]), float(data.get("autoscale_interval", 2.0))


def result_line(results: dict[str, measure.Figures]) -> None:
    if "builtin-60" in results and "keda-tuned" in results:
        b, k = results["builtin-60"], results["keda-tuned"]
        say(
            f"RESULT_REAL p95_wait_ratio={b.p95_wait / k.p95_wait:.2f} "
            f"cost_ratio={b.worker_seconds / k.worker_seconds:.2f} builtin=builtin-60 keda=keda-tuned"
        )


def report(results: dict[str, measure.Figures], sample: trace.Replay, interval: float) -> dict[str, Any]:
    say(
        "\nreal cluster, then the simulation's replay of the same arrivals (pods starting as measured, "
        f"the builtin policy ticking every {interval:g} s as the operator does):"
    )
    starts = [f.start_median for f in results.values() if f.start_median is not None]
    start_delay = float(sorted(starts)[len(starts) // 2]) if starts else 10.0
    out: dict[str, Any] = {}
    for name, fig in results.items():
        sim = replay.simulate(name, sample, trace.DURATION, fig.start_median or start_delay, interval)
        p95_off = replay.off_by(sim.p95_wait, fig.p95_wait)
        cost_off = replay.off_by(sim.worker_seconds, fig.worker_seconds)
        flag = "" if max(p95_off, cost_off) <= 0.15 else "  <- more than 15 % off"
        say(f"  {name:<11} real: {fig.line()}")
        low, high = sim.p95_range
        say(
            f"  {'':<11} sim:  p95_wait_s={sim.p95_wait:.1f} ({low:.1f} to {high:.1f} over the tick phase) "
            f"max_wait_s={sim.max_wait:.1f} worker_seconds={sim.worker_seconds:.0f}  "
            f"off: p95 {p95_off:.0%} cost {cost_off:.0%}{flag}"
        )
        out[name] = {"real": fig, "sim": sim, "off": (p95_off, cost_off)}
    return out
