"""The autoscaling policy's data: its configuration (from a spec), one Observation of a queue, the state
decide() keeps between ticks, and the Decision it returns (policy.py holds the rules)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from queueworker.api.spec import QueueWorkerSpec

Direction = Literal["up", "down", "hold"]


@dataclass(frozen=True)
class PolicyConfig:
    """Knobs of the policy. The defaults are the QueueWorker spec's defaults and what bench/ measures."""

    min_replicas: int = 1
    max_replicas: int = 10
    target_wait_seconds: float = 30.0
    scale_down_delay_seconds: float = 300.0
    #: Worker slots per replica: the QueueWorker's concurrency.
    slots_per_replica: int = 2
    #: Bounded step up per decision: at least this many replicas ...
    max_step_up: int = 4
    #: ... or this percentage of the current replicas, whichever is larger.
    max_step_up_percent: float = 100.0
    #: Time constant (seconds) of the arrival and completion rates' moving averages.
    rate_window_seconds: float = 60.0
    #: Time constant (seconds) of a faster arrival average, used when it differs from the slow one by
    #: more than change_sigmas standard deviations of Poisson noise.
    fast_rate_window_seconds: float = 10.0
    change_sigmas: float = 3.0
    #: Time constant (seconds) of the mean service time's moving average (a property of the tasks, so
    #: long: a short window's noise moves the keep-up term by whole replicas).
    service_window_seconds: float = 1800.0
    #: Fraction of the slots the keep-up term may keep busy. The backlog term adds the headroom a
    #: queue shows it needs, so none is reserved up front.
    target_utilization: float = 1.0
    #: Standard deviations of Poisson noise taken off the arrival rate in the keep-up term, so that
    #: noise alone neither adds replicas nor holds them through the scale-down window (the backlog term
    #: uses the measured rate: a queue is the evidence). Wide, as a short average just after a change
    #: of rate is noisy: the keep-up term is a floor, the backlog term sizes.
    confidence: float = 5.0
    #: Seconds from asking for a replica to its first task (pod scheduling, image, worker boot) until the
    #: caller has measured one (Observation.start_seconds).
    start_delay_seconds: float = 10.0
    #: The mean wait the backlog term plans for, as a fraction of target_wait_seconds: near, not far
    #: below, the target.
    planned_wait_fraction: float = 0.4

    def __post_init__(self) -> None:
        problems = []
        if self.min_replicas < 0:
            problems.append(f"min_replicas must be >= 0 (got {self.min_replicas})")
        if self.max_replicas < max(self.min_replicas, 1):
            problems.append(f"max_replicas must be >= max(min_replicas, 1) (got {self.max_replicas})")
        if self.target_wait_seconds <= 0:
            problems.append(f"target_wait_seconds must be > 0 (got {self.target_wait_seconds})")
        if self.scale_down_delay_seconds < 0:
            problems.append(f"scale_down_delay_seconds must be >= 0 (got {self.scale_down_delay_seconds})")
        if self.slots_per_replica < 1:
            problems.append(f"slots_per_replica must be >= 1 (got {self.slots_per_replica})")
        if self.max_step_up < 1:
            problems.append(f"max_step_up must be >= 1 (got {self.max_step_up})")
        if self.max_step_up_percent < 0:
            problems.append(f"max_step_up_percent must be >= 0 (got {self.max_step_up_percent})")
        if self.rate_window_seconds <= 0:
            problems.append(f"rate_window_seconds must be > 0 (got {self.rate_window_seconds})")
        if self.fast_rate_window_seconds <= 0:
            problems.append(f"fast_rate_window_seconds must be > 0 (got {self.fast_rate_window_seconds})")
        if self.change_sigmas < 0 or self.confidence < 0:
            problems.append("change_sigmas and confidence must be >= 0")
        if self.service_window_seconds <= 0:
            problems.append(f"service_window_seconds must be > 0 (got {self.service_window_seconds})")
        if not 0 < self.target_utilization <= 1:
            problems.append(f"target_utilization must be in (0, 1] (got {self.target_utilization})")
        if self.start_delay_seconds < 0:
            problems.append(f"start_delay_seconds must be >= 0 (got {self.start_delay_seconds})")
        if self.planned_wait_fraction <= 0:
            problems.append(f"planned_wait_fraction must be > 0 (got {self.planned_wait_fraction})")
        if problems:
            raise ValueError("; ".join(problems))

    @classmethod
    def from_spec(cls, spec: QueueWorkerSpec, **overrides: float) -> PolicyConfig:
        """The policy of a QueueWorker: spec.autoscaling's bounds, target and delay; concurrency as slots."""
        a = spec.autoscaling
        values: dict[str, float] = {
            "min_replicas": a.min_replicas,
            "max_replicas": a.max_replicas,
            "target_wait_seconds": a.target_wait_seconds,
            "scale_down_delay_seconds": a.scale_down_delay_seconds,
            "slots_per_replica": spec.concurrency,
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Observation:
    """One reading of a queue, as queue_stats gives it (queueworker.broker.stats)."""

    time: float  # seconds on the caller's clock (monotonic is best)
    backlog: int  # queued messages, all priority lists
    reserved: int = 0  # delivered but not acknowledged (prefetched or running with acks_late)
    busy_slots: int = 0  # slots running a task, from worker heartbeats
    total_slots: int = 0  # slots of live workers, from worker heartbeats
    workers: int = 0  # live workers
    oldest_wait: float | None = None  # seconds the oldest queued task has waited
    completed_total: int | None = None  # monotonic counter of finished tasks (may reset)
    #: Workers running at least one task (by pod, from heartbeats): a scale-down never goes below it,
    #: since removing a busy worker would cut its tasks short. Callers fill it when a scale-down is near.
    busy_workers: int = 0
    #: Seconds the queue's recent workers took from being asked for to ready (pod creation to Ready,
    #: process start to ready), as the caller measured them; None when it has no measurement yet.
    start_seconds: float | None = None


@dataclass(frozen=True)
class PolicyState:
    """What `decide` remembers between ticks. `PolicyState()` is the initial state; treat it as opaque."""

    last: Observation | None = None
    #: Exponentially decayed sums (time constant rate_window_seconds): arrivals, completions, seconds.
    arrived: float = 0.0
    done: float = 0.0
    seconds: float = 0.0
    #: The same for arrivals over fast_rate_window_seconds, to notice a change of rate quickly.
    arrived_fast: float = 0.0
    seconds_fast: float = 0.0
    #: Decayed sums of squared weights x seconds, for the Poisson noise: var = rate x this / seconds^2.
    seconds_sq: float = 0.0
    seconds_sq_fast: float = 0.0
    #: Exponentially decayed sums (time constant service_window_seconds): busy slot-seconds, completions.
    busy_seconds: float = 0.0
    served: float = 0.0
    service_span: float = 0.0  # decayed seconds observed: how full the service window is
    #: Recommendations of the scale-down window as (time, replicas), times increasing and replicas
    #: strictly decreasing, so the first entry is the window's maximum.
    window: tuple[tuple[float, int], ...] = ()
    #: Time of the first observation of the current unbroken run (None: no run yet, e.g. after an outage).
    since: float | None = None
    last_scale_time: float | None = None
    last_up_time: float | None = None  # of the last scale-up: its replicas may still be starting
    #: The last measured start time (Observation.start_seconds): kept when later observations have none.
    start_seconds: float | None = None

    @property
    def arrival_rate(self) -> float | None:
        """Tasks/s arriving, averaged over about rate_window_seconds; None before two observations."""
        return max(self.arrived / self.seconds, 0.0) if self.seconds > 0 else None

    @property
    def completion_rate(self) -> float | None:
        return self.done / self.seconds if self.seconds > 0 else None


@dataclass(frozen=True)
class Decision:
    replicas: int  # what to run, within [min_replicas, max_replicas]
    recommended: int  # the raw recommendation, before bounds, step and delay
    reason: str
    state: PolicyState = field(repr=False)
    direction: Direction = "hold"
