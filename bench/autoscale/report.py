"""The autoscaling table (text) and one PNG per trace: backlog and replicas over time, per policy."""

from __future__ import annotations

from pathlib import Path

from bench.autoscale.run import Row
from bench.autoscale.sim import Result

HEADER = (
    f"{'trace':<11} {'policy':<11} {'tasks':>6} {'p50 s':>7} {'p95 s':>7} {'p99 s':>7}"
    f" {'worker-h':>9} {'ups':>5} {'downs':>6} {'p95/keda':>9} {'cost/keda':>10} {'p95/tuned':>10}"
    f" {'cost/tuned':>11}"
)
#: Policies drawn in the plots (the table has them all).
PLOTTED = ("builtin", "builtin-60", "keda", "keda-tuned", "latency")


def _ratio(value: float, base: Row | None, field: str) -> str:
    denominator = getattr(base, field) if base is not None else 0.0
    return f"{value / denominator:.2f}" if denominator else "-"


def table(rows: list[Row]) -> str:
    """One line per (trace, policy), with the p95 and cost ratios against KEDA's defaults and against
    keda-tuned on the same trace."""
    keda = {r.trace: r for r in rows if r.policy == "keda"}
    tuned = {r.trace: r for r in rows if r.policy == "keda-tuned"}
    lines = [HEADER, "-" * len(HEADER)]
    for r in rows:
        k, t = keda.get(r.trace), tuned.get(r.trace)
        lines.append(
            f"{r.trace:<11} {r.policy:<11} {r.tasks:>6} {r.p50:>7.1f} {r.p95:>7.1f} {r.p99:>7.1f}"
            f" {r.cost:>9.2f} {r.ups:>5.1f} {r.downs:>6.1f} {_ratio(r.p95, k, 'p95'):>9}"
            f" {_ratio(r.cost, k, 'cost'):>10} {_ratio(r.p95, t, 'p95'):>10} {_ratio(r.cost, t, 'cost'):>11}"
        )
    return "\n".join(lines)


def plot(trace: str, results: dict[str, Result], out_dir: Path, description: str = "") -> Path:
    """Backlog (top) and replicas (bottom) over time for each policy; returns the PNG's path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 6), sharex=True)
    for policy, result in results.items():
        if policy not in PLOTTED:
            continue
        t = [s[0] / 60 for s in result.samples]
        top.plot(t, [s[1] for s in result.samples], label=policy, linewidth=1)
        bottom.step(t, [s[2] for s in result.samples], where="post", label=policy, linewidth=1)
    top.set_ylabel("queued tasks")
    top.set_title(f"{trace}: {description}" if description else trace, fontsize=10)
    top.legend(loc="upper right")
    bottom.set_ylabel("replicas")
    bottom.set_xlabel("minutes")
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"autoscale-{trace}.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
