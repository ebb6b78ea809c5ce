"""The burst trace `make bench-cluster` replays: the simulation's burst (0.1 task/s, 1.4 task/s for 3 min)
once, short enough for a cluster run, with the simulation's task lengths (lognormal, mean 10 s), seeded.

The same arrivals and task lengths go to every policy, on the cluster and in the simulation's replay."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.autoscale.traces import Trace, arrivals, service_times

BASE_RATE = 0.1
BURST_RATE = 1.4
BURST_START = 60.0
BURST_SECONDS = 180.0
#: Seconds of arrivals: the burst, and long enough after it for KEDA's defaults (300 s of HPA stabilization)
#: to come back to minReplicas.
DURATION = 660.0


def rate(t: float) -> float:
    return BURST_RATE if BURST_START <= t < BURST_START + BURST_SECONDS else BASE_RATE


TRACE = Trace(
    "cluster-burst",
    f"{BASE_RATE} task/s, and {BURST_RATE} task/s for {BURST_SECONDS:.0f} s from {BURST_START:.0f} s, "
    f"{DURATION:.0f} s",
    DURATION,
    rate,
    BURST_RATE,
)


@dataclass(frozen=True)
class Replay:
    """One sample of the trace: arrival offsets (seconds from its start) and each task's length."""

    arrival: np.ndarray
    service: np.ndarray

    @property
    def burst_end(self) -> float:
        return BURST_START + BURST_SECONDS


def sample(seed: int, duration: float = DURATION) -> Replay:
    rng = np.random.default_rng(seed)
    trace = (
        TRACE if duration == DURATION else Trace(TRACE.name, TRACE.description, duration, rate, BURST_RATE)
    )
    arrival = arrivals(trace, rng)
    return Replay(arrival, service_times(len(arrival), rng))
