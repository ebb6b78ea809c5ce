"""The builtin autoscaling loop around the pure policy, written once for the operator, local mode and bench/.

Each step, for one QueueWorker: learn the start times of its workers that became ready since the last step
(StartTimes, each worker once), ask `decide` for replicas with the observation (None: the broker is
unreachable, so hold), and when that is a scale-down, ask again with `busy_workers` = the workers holding
tasks, so that those stay; then, only when the replicas change, scale, keeping the busy workers.

The loop keeps each QueueWorker's policy state and start-time samples under an opaque key; what it
reads and changes goes through a `Fleet`, the caller's view of that QueueWorker's workers (pods of a
Deployment, local processes, simulated pods). `forget` drops the state of QueueWorkers that are gone.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Iterable, Mapping
from dataclasses import replace
from typing import Protocol

from queueworker.scaling.model import Decision, Observation, PolicyConfig, PolicyState
from queueworker.scaling.policy import decide
from queueworker.scaling.startup import StartTimes

__all__ = ["Fleet", "ScalingLoop"]


class Fleet(Protocol):
    """One QueueWorker's workers, as the loop reads and scales them. Worker ids are the caller's (pod
    names, Celery hostnames, simulated pod ids); the loop only passes them back."""

    def replicas(self) -> int:
        """The replicas running now, as the policy counts them (not those already being removed)."""
        ...

    def start_times(self, seen: Callable[[str], bool]) -> Iterable[tuple[str, float]]:
        """(worker id, seconds from creation to ready) of workers that are ready. `seen(id)` says which were
        recorded already: a fleet may skip measuring those, and the loop ignores them anyway."""
        ...

    def busy(self) -> Mapping[str, int]:
        """Tasks each worker holds now (worker id -> count); read only before a scale-down."""
        ...

    def scale(self, replicas: int, keep: Mapping[str, int]) -> None:
        """Run `replicas` workers. On a scale-down, the workers in `keep` (worker id -> tasks held, all > 0)
        run tasks: they stay, and if some must go after all, the least busy go first."""
        ...


class ScalingLoop:
    """The policy state and start times of every QueueWorker a caller autoscales, by key."""

    def __init__(self) -> None:
        self._states: dict[Hashable, PolicyState] = {}
        self._starts: dict[Hashable, StartTimes] = {}

    def state(self, key: Hashable) -> PolicyState:
        return self._states.get(key, PolicyState())

    def learn_starts(self, key: Hashable, fleet: Fleet) -> float | None:
        """Record the start times of the fleet's newly ready workers; the estimate (None before the first)."""
        starts = self._starts.setdefault(key, StartTimes())
        for worker, seconds in fleet.start_times(starts.seen):
            starts.record(worker, seconds)
        return starts.estimate()

    def step(
        self,
        key: Hashable,
        config: PolicyConfig,
        observation: Observation | None,
        fleet: Fleet,
        *,
        learn: bool = True,
    ) -> Decision:
        """One decision for the QueueWorker `key`, carried out on `fleet`. `learn` off: the policy is given no
        measured start time (it assumes config.start_delay_seconds)."""
        current = fleet.replicas()
        obs = observation
        if obs is not None and learn:
            obs = replace(obs, start_seconds=self.learn_starts(key, fleet))
        state = self.state(key)
        decision = decide(config, state, obs, current)
        keep: dict[str, int] = {}
        if decision.direction == "down" and obs is not None:
            # Workers running tasks stay: the policy keeps at least that many, and the fleet keeps those.
            keep = {worker: count for worker, count in fleet.busy().items() if count > 0}
            if keep:
                decision = decide(config, state, replace(obs, busy_workers=len(keep)), current)
        self._states[key] = decision.state
        if decision.replicas != current:
            fleet.scale(decision.replicas, keep)
        return decision

    def forget(self, live: Collection[Hashable]) -> None:
        """Drop the state of every key not in `live` (QueueWorkers deleted or no longer autoscaled)."""
        for table in (self._states, self._starts):
            for key in [k for k in table if k not in live]:
                del table[key]
