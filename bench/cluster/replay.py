"""The simulation's replay of a cluster run: the same arrivals and task lengths under the simulation's model
of each policy, with the pods' start time the cluster measured; and how far it lands from the cluster.

`mode: hpa` is modelled here as the operator renders it (builders/autoscaling.py): an HPA on two External
metrics from Prometheus, the oldest task's wait (Value, target targetWaitSeconds) and the queue length
(AverageValue, target concurrency), whichever asks for more, with scale-up at once (100 % or 4 pods per
15 s) and scale-down after scaleDownDelaySeconds of stabilization; the series are as Prometheus last
scraped the exporter (every 15 s) and the HPA syncs every 15 s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from bench.autoscale.baselines import KedaTuned
from bench.autoscale.policies import HPA_SYNC, Builtin, HpaAlgorithm
from bench.autoscale.run import CONFIG, make_controller
from bench.autoscale.sim import Controller, Simulation, View
from bench.cluster.policies import POLICIES
from bench.cluster.trace import Replay

#: The chart's ServiceMonitor interval: how old the series the adapter serves may be.
SCRAPE_INTERVAL = 15.0


class HpaMode:
    """The HPA `mode: hpa` renders (see the module docstring)."""

    prefers_idle = False
    interval = HPA_SYNC

    def __init__(self, name: str = "hpa") -> None:
        self.name = name
        window = CONFIG.scale_down_delay_seconds
        least, most = max(CONFIG.min_replicas, 1), CONFIG.max_replicas
        self.length = HpaAlgorithm(float(CONFIG.slots_per_replica), least, most, down_window=window)
        self.least, self.most, self.window = least, most, window
        self.recommendations: list[tuple[float, int]] = []
        self.last_scrape = -math.inf
        self.scraped = (0, 0.0)

    def tick(self, now: float, view: View, current: int) -> int:
        if now - self.last_scrape >= SCRAPE_INTERVAL - 1e-9:
            self.last_scrape = now
            self.scraped = (view.backlog, view.oldest_wait or 0.0)
        backlog, wait = self.scraped
        current = max(current, 1)
        by_length = math.ceil(backlog / CONFIG.slots_per_replica - 1e-9)
        ratio = wait / CONFIG.target_wait_seconds
        by_wait = current if abs(ratio - 1.0) <= 0.1 else math.ceil(ratio * current - 1e-9)
        by_length = current if abs(backlog / (CONFIG.slots_per_replica * current) - 1.0) <= 0.1 else by_length
        raw = min(max(by_length, by_wait, self.least), self.most)
        self.recommendations = [(t, r) for t, r in self.recommendations if t > now - self.window]
        self.recommendations.append((now, raw))
        desired = min(max(current, raw), max(r for _, r in self.recommendations))
        if desired > current:
            desired = min(desired, max(current + 4, current * 2))
        return min(max(desired, self.least), self.most)


def controller(name: str, interval: float = 5.0) -> Controller:
    """The simulation's model of the policy `name`; `interval`: the builtin policy's tick."""
    policy = POLICIES[name]
    if name == "hpa":
        return HpaMode()
    if policy.mode == "builtin":
        config = replace(
            CONFIG, scale_down_delay_seconds=policy.delay, target_wait_seconds=policy.target_wait
        )
        return Builtin(config, interval=interval, name=name)
    if policy.list_length is not None:
        return KedaTuned(CONFIG.min_replicas, CONFIG.max_replicas, float(policy.list_length), name=name)
    return make_controller(name)


#: The replay runs once per controller phase (its ticks offset by 0, 1/5, ... of its interval): on the
#: cluster the autoscaler's ticks fall anywhere against the trace, and on a burst the phase alone moves
#: the p95 wait by a third.
PHASES = 5


@dataclass(frozen=True)
class Simulated:
    p95_wait: float  # the mean over the phases
    max_wait: float
    worker_seconds: float
    p95_range: tuple[float, float]  # the lowest and highest p95 over the phases


def simulate(
    policy: str, replay: Replay, duration: float, start_delay: float, interval: float = 5.0
) -> Simulated:
    runs = []
    for i in range(PHASES):
        control = controller(policy, interval)
        sim = Simulation(
            replay.arrival,
            replay.service,
            control,
            duration=duration,
            concurrency=CONFIG.slots_per_replica,
            initial_replicas=CONFIG.min_replicas,
            phase=i * control.interval / PHASES,
            start_delay=start_delay,
        )
        result = sim.run()
        runs.append((float(np.percentile(result.waits, 95)), float(result.waits.max()), result.cost))
    p95s = [r[0] for r in runs]
    return Simulated(
        float(np.mean(p95s)),
        max(r[1] for r in runs),
        float(np.mean([r[2] for r in runs])),
        (min(p95s), max(p95s)),
    )


def off_by(sim: float, real: float) -> float:
    """The simulation's relative distance from the cluster (0.12 = 12 % off)."""
    return abs(sim - real) / real if real > 0 else (0.0 if sim == 0 else math.inf)
