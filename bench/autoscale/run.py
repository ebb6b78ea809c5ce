"""Run every trace under every policy over a few seeds and summarise waits, cost and scale events."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from queueworker.api.spec import QueueWorkerSpec
from queueworker.scaling.policy import PolicyConfig

from bench.autoscale.baselines import TUNED_DOWN_WINDOW, KedaTuned, LatencyScaler, tuned_list_length
from bench.autoscale.policies import Builtin, Clairvoyant, HpaQueueLength, Keda
from bench.autoscale.sim import START_DELAY, Controller, Result, Simulation
from bench.autoscale.traces import SERVICE_MEAN, TRACES, Trace, arrivals, service_times

#: The QueueWorker every policy scales: the spec's defaults (minReplicas 1, maxReplicas 10,
#: targetWaitSeconds 30, scaleDownDelaySeconds 300, concurrency 2). The builtin policy gets exactly what
#: the operator derives from it; KEDA and the HPA get the same bounds.
SPEC = QueueWorkerSpec(app="bench.tasks:app", queues=("bench",))
CONFIG = PolicyConfig.from_spec(SPEC)
SEEDS = (1, 2, 3, 4, 5)
#: builtin-60 is the builtin policy with scaleDownDelaySeconds 60: the QueueWorker a team that tunes KEDA's
#: scale-down window to 60 s would write (the delay is the policy's counterpart of that window); it is what
#: keda-tuned is compared with. builtin-fixed assumes the default start time instead of learning it.
POLICIES = ("builtin", "builtin-60", "keda", "keda-tuned", "latency", "hpa", "oracle")


def make_controller(
    policy: str,
    config: PolicyConfig = CONFIG,
    trace: Trace | None = None,
    service_mean: float = SERVICE_MEAN,
    start_delay: float = START_DELAY,
) -> Controller:
    if policy == "oracle":
        if trace is None:
            raise ValueError("the oracle needs the trace")
        scale = SERVICE_MEAN / service_mean  # the arrival scaling of `simulate`

        def rate(t: float) -> float:
            return trace.rate(t) * scale

        return Clairvoyant(rate, service_mean, config, trace.duration, start_delay)
    if policy == "builtin":
        return Builtin(config)
    if policy == "builtin-60":
        return Builtin(replace(config, scale_down_delay_seconds=TUNED_DOWN_WINDOW), name=policy)
    if policy == "builtin-fixed":
        return Builtin(config, name=policy, learn=False)
    if policy == "keda":
        return Keda(config.min_replicas, config.max_replicas)
    if policy == "keda-tuned":
        length = tuned_list_length(config.slots_per_replica, config.target_wait_seconds, service_mean)
        return KedaTuned(config.min_replicas, config.max_replicas, length)
    if policy == "latency":
        return LatencyScaler(config.min_replicas, config.max_replicas, config.target_wait_seconds)
    if policy == "hpa":
        return HpaQueueLength(config.min_replicas, config.max_replicas)
    raise ValueError(f"unknown policy {policy!r}")


def simulate(
    trace: Trace,
    policy: str,
    seed: int,
    config: PolicyConfig = CONFIG,
    service_mean: float = SERVICE_MEAN,
    start_delay: float = START_DELAY,
) -> Result:
    rng = np.random.default_rng(seed)
    # Other service times keep the offered load (busy slots) of the trace: the rate scales inversely.
    arrival = arrivals(trace, rng, scale=SERVICE_MEAN / service_mean)
    service = service_times(len(arrival), rng, mean=service_mean)
    controller = make_controller(policy, config, trace, service_mean, start_delay)
    phase = float(rng.uniform(0.0, controller.interval))
    sim = Simulation(
        arrival,
        service,
        controller,
        duration=trace.duration,
        concurrency=config.slots_per_replica,
        initial_replicas=max(config.min_replicas, 1),
        phase=phase,
        start_delay=start_delay,
    )
    return sim.run()


@dataclass(frozen=True)
class Row:
    trace: str
    policy: str
    tasks: int
    p50: float
    p95: float
    p99: float
    cost: float  # worker-hours, summed over the seeds
    ups: float  # scale-ups per run
    downs: float  # scale-downs per run


def summarise(trace: str, policy: str, results: list[Result]) -> Row:
    waits = np.concatenate([r.waits for r in results])
    p50, p95, p99 = (float(x) for x in np.percentile(waits, [50, 95, 99]))
    n = len(results)
    return Row(
        trace,
        policy,
        len(waits),
        p50,
        p95,
        p99,
        sum(r.cost for r in results) / 3600.0,
        sum(r.ups for r in results) / n,
        sum(r.downs for r in results) / n,
    )


def run_all(
    traces: tuple[str, ...] = tuple(TRACES),
    seeds: tuple[int, ...] = SEEDS,
    config: PolicyConfig = CONFIG,
    service_mean: float = SERVICE_MEAN,
    policies: tuple[str, ...] = POLICIES,
    start_delay: float = START_DELAY,
) -> tuple[list[Row], dict[tuple[str, str], Result]]:
    """Rows per (trace, policy), and the first seed's result of each for plotting."""
    rows: list[Row] = []
    first: dict[tuple[str, str], Result] = {}
    for name in traces:
        for policy in policies:
            results = [
                simulate(TRACES[name], policy, seed, config, service_mean, start_delay) for seed in seeds
            ]
            first[(name, policy)] = results[0]
            rows.append(summarise(name, policy, results))
    return rows, first
