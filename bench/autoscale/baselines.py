"""The baselines a team that cares about latency would run instead of KEDA's defaults.

keda-tuned (a ScaledObject tuned for latency, the redis list-length trigger):
  - pollingInterval 5 s: the trigger is read every 5 s to activate from zero; cooldownPeriod 60 s;
  - listLength = the tasks one pod finishes within the wait target (concurrency x targetWaitSeconds /
    mean task seconds, rounded, at least 1): a backlog of listLength per pod drains within the target;
  - HPA behavior: scale-up stabilization 0 s, policies 100 % or 4 pods per 15 s (the larger);
    scale-down stabilization 60 s, 100 % per 15 s. The HPA itself syncs every 15 s (the cluster's
    --horizontal-pod-autoscaler-sync-period, which a ScaledObject cannot change), tolerance 0.1, and
    reads LLEN of the base list through KEDA's metrics server (live) at each sync.
latency (a queue-time autoscaler, as commercial ones work): every 10 s it reads the oldest task's wait
  (0 when nothing is queued) and recommends ceil(replicas x oldest wait / targetWaitSeconds) within the
  bounds; it scales up to that at once and down to the highest recommendation of the last 60 s (once it has
  60 s of them). It
  patches the Deployment's replicas, so the ReplicaSet picks the pods to remove (newest first).
"""

from __future__ import annotations

import math

from bench.autoscale.policies import HpaAlgorithm
from bench.autoscale.sim import View

#: keda-tuned: the ScaledObject's and the HPA behavior's tuned values.
TUNED_POLLING = 5.0
TUNED_COOLDOWN = 60.0
TUNED_DOWN_WINDOW = 60.0
HPA_SYNC = 15.0
#: latency: the queue-time autoscaler's period and scale-down window.
LATENCY_INTERVAL = 10.0
LATENCY_DOWN_WINDOW = 60.0


def tuned_list_length(concurrency: int, target_wait: float, service_mean: float) -> float:
    """The listLength a team tunes to its task rate: what one pod finishes within the wait target."""
    return float(max(1, round(concurrency * target_wait / service_mean)))


class KedaTuned:
    """A ScaledObject tuned for latency (see the module docstring)."""

    prefers_idle = False
    interval = TUNED_POLLING

    def __init__(
        self, min_replicas: int, max_replicas: int, list_length: float, name: str = "keda-tuned"
    ) -> None:
        self.name = name
        self.min_replicas = min_replicas
        self.list_length = list_length
        self.hpa = HpaAlgorithm(
            list_length, max(min_replicas, 1), max_replicas, down_window=TUNED_DOWN_WINDOW
        )
        self.last_sync = -math.inf
        self.last_active = -math.inf

    def tick(self, now: float, view: View, current: int) -> int:
        length = view.base_list_length
        if length > 0:
            self.last_active = now
            if current == 0:
                return max(self.min_replicas, 1)
        elif current > 0 and self.min_replicas == 0 and now - self.last_active >= TUNED_COOLDOWN:
            return 0
        if current == 0 or now - self.last_sync < HPA_SYNC - 1e-9:
            return current
        self.last_sync = now
        return self.hpa.desired(now, float(length), current)


class LatencyScaler:
    """Replicas proportional to the oldest task's wait over the target (see the module docstring)."""

    prefers_idle = False
    interval = LATENCY_INTERVAL

    def __init__(
        self, min_replicas: int, max_replicas: int, target_wait: float, name: str = "latency"
    ) -> None:
        self.name = name
        self.min_replicas = min_replicas
        self.max_replicas = max_replicas
        self.target_wait = target_wait
        self.recommendations: list[tuple[float, int]] = []
        self.since: float | None = None

    def tick(self, now: float, view: View, current: int) -> int:
        self.since = now if self.since is None else self.since
        wait = view.oldest_wait or 0.0
        base = max(current, 1)  # at zero replicas a waiting task asks for one
        raw = math.ceil(base * wait / self.target_wait - 1e-9)
        raw = min(max(raw, self.min_replicas), self.max_replicas)
        self.recommendations = [(t, r) for t, r in self.recommendations if t > now - LATENCY_DOWN_WINDOW]
        self.recommendations.append((now, raw))
        if raw >= current:
            return raw
        if now - self.since < LATENCY_DOWN_WINDOW:  # not a whole window of recommendations yet
            return current
        return min(current, max(r for _, r in self.recommendations))
