"""Arrival traces and service times for the autoscaling simulation, all seeded.

Every trace is a non-homogeneous Poisson process given by its rate function (tasks/s), sampled by
thinning; service times are lognormal. The numbers are chosen so that the busiest moment of each trace
needs most of, but not more than, the replicas every policy may run (maxReplicas 10 x concurrency 2).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: Mean and log-space spread of task service times (seconds).
SERVICE_MEAN = 10.0
SERVICE_SIGMA = 0.8


@dataclass(frozen=True)
class Trace:
    name: str
    description: str
    duration: float  # seconds of arrivals; the simulation runs on until the queue is empty
    rate: Callable[[float], float]  # arrivals per second at time t
    peak: float  # an upper bound of rate(t), for thinning


def _square(base: float, high: float, start: float, on: float, period: float) -> Callable[[float], float]:
    def rate(t: float) -> float:
        return high if t >= start and (t - start) % period < on else base

    return rate


def _diurnal(low: float, high: float, period: float) -> Callable[[float], float]:
    def rate(t: float) -> float:
        return low + (high - low) * 0.5 * (1 - math.cos(2 * math.pi * t / period))

    return rate


TRACES: dict[str, Trace] = {
    t.name: t
    for t in (
        Trace("steady", "Poisson at 0.8 task/s (8 busy slots) for 1 h", 3600.0, lambda t: 0.8, 0.8),
        Trace(
            "burst",
            "square wave: 0.1 task/s, and 1.4 task/s for 3 min every 20 min, 2 h",
            7200.0,
            _square(0.1, 1.4, 300.0, 180.0, 1200.0),
            1.4,
        ),
        Trace(
            "long-burst",
            "square wave: 0.1 task/s, and 1.4 task/s for 10 min every 30 min, 3 h",
            10800.0,
            _square(0.1, 1.4, 300.0, 600.0, 1800.0),
            1.4,
        ),
        Trace(
            "diurnal",
            "sinusoid between 0.05 and 1.5 task/s over a 2 h 'day', 4 h",
            14400.0,
            _diurnal(0.05, 1.5, 7200.0),
            1.5,
        ),
        Trace(
            "spike",
            "0.05 task/s with one 30 s spike at 6 task/s (about 180 tasks), 1 h",
            3600.0,
            _square(0.05, 6.0, 900.0, 30.0, 1e9),
            6.0,
        ),
    )
}


def arrivals(trace: Trace, rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
    """Arrival times (sorted, seconds) of one sample of the trace, its rate multiplied by `scale`."""
    n = int(rng.poisson(trace.peak * scale * trace.duration))
    times = np.sort(rng.uniform(0.0, trace.duration, n))
    keep = rng.uniform(0.0, trace.peak, n) < np.array([trace.rate(float(t)) for t in times])
    return times[keep]


def service_times(
    n: int, rng: np.random.Generator, mean: float = SERVICE_MEAN, sigma: float = SERVICE_SIGMA
) -> np.ndarray:
    """Lognormal service times with the given mean (seconds)."""
    mu = math.log(mean) - sigma * sigma / 2
    return rng.lognormal(mu, sigma, n)
