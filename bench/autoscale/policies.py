"""The autoscalers compared: the builtin policy (imported from the operator), a KEDA-default emulation
and an HPA on the queue-length metric. All use the same bounds; the defaults of each are its own.

KEDA (redis scaler, ScaledObject defaults): the operator polls the trigger every 30 s (pollingInterval)
to activate from zero and to return to zero 300 s (cooldownPeriod) after the list was last non-empty;
between 1 and max the HPA KEDA creates reads `LLEN <list>` (the base list only: KEDA's redis scaler
does not see priority lists, prefetched or running tasks) through KEDA's metrics server every 15 s
(live: useCachedMetrics is off by default), target listLength 5 per pod (AverageValue).
HPA (autoscaling/v2 defaults): 15 s sync, tolerance 0.1, desired = ceil(metric / target); scale-up
stabilization 0 s and at most max(+100 %, +4 pods) per 15 s; scale-down to the highest recommendation
of the last 300 s. The HPA-on-queue-length emulation runs that algorithm on the exporter's
celery_queue_length (all lists) as Prometheus last scraped it (every 30 s), target 5 per pod, min 1.
The clairvoyant reference ("oracle") is no autoscaler at all: see its class.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
from queueworker.scaling.loop import ScalingLoop
from queueworker.scaling.policy import Decision, Observation, PolicyConfig, PolicyState

from bench.autoscale.sim import View

#: HPA controller defaults (kube-controller-manager and autoscaling/v2 behavior).
HPA_SYNC = 15.0
HPA_TOLERANCE = 0.1
HPA_DOWN_WINDOW = 300.0
HPA_UP_PODS = 4
HPA_UP_PERCENT = 100.0
#: KEDA ScaledObject and redis scaler defaults.
KEDA_POLLING = 30.0
KEDA_COOLDOWN = 300.0
KEDA_LIST_LENGTH = 5.0
KEDA_ACTIVATION_LIST_LENGTH = 0
#: Prometheus scrape interval for the exporter (the ServiceMonitor's usual 30 s).
SCRAPE_INTERVAL = 30.0
#: Utilization the clairvoyant reference plans for: its own, not the builtin policy's knob (at 100 % a
#: queue that knows no backlog never catches up).
ORACLE_UTILIZATION = 0.9


class SimFleet:
    """The simulated pods as the scaling loop sees them (queueworker.scaling.loop.Fleet); worker ids are
    pod ids. Start times are handed over from a cursor (each once, as the operator lists new pods)."""

    def __init__(self, view: View, current: int, measured: int) -> None:
        self.view, self.current, self.measured = view, current, measured
        self.target = current

    def replicas(self) -> int:
        return self.current

    def start_times(self, seen: Callable[[str], bool]) -> Iterable[tuple[str, float]]:
        starts = self.view.pod_starts
        new = starts[self.measured :]
        self.measured = len(starts)
        return [(str(pod), seconds) for pod, seconds in new]

    def busy(self) -> Mapping[str, int]:
        return {str(pod): count for pod, count in self.view.busy.items()}

    def scale(self, replicas: int, keep: Mapping[str, int]) -> None:
        self.target = replicas
        if replicas < self.current:
            self.view.keep({int(pod): count for pod, count in keep.items()})


class Builtin:
    """The builtin autoscaling loop the operator runs (queueworker.scaling.loop), fed what the probe
    returns every autoscale interval (5 s), the pods' start times as the operator measures them (unless
    `learn` is off: then it assumes its default), and the tasks each pod holds before a scale-down (those
    pods stay, as the operator's pod-deletion-cost keeps them)."""

    prefers_idle = True
    KEY = "sim"

    def __init__(
        self, config: PolicyConfig, interval: float = 5.0, name: str = "builtin", learn: bool = True
    ) -> None:
        self.name = name
        self.config = config
        self.interval = interval
        self.learn = learn
        self.loop = ScalingLoop()
        self.decisions: list[Decision] = []
        self._measured = 0

    @property
    def state(self) -> PolicyState:
        return self.loop.state(self.KEY)

    def tick(self, now: float, view: View, current: int) -> int:
        hb = view.heartbeat
        obs = Observation(
            time=now,
            backlog=view.backlog,
            reserved=view.reserved,
            busy_slots=hb.busy,
            total_slots=hb.total,
            workers=hb.workers,
            oldest_wait=view.oldest_wait,
            completed_total=hb.completed,
        )
        fleet = SimFleet(view, current, self._measured)
        decision = self.loop.step(self.KEY, self.config, obs, fleet, learn=self.learn)
        self._measured = fleet.measured
        if decision.direction != "hold":
            self.decisions.append(decision)
        return fleet.target


@dataclass
class HpaAlgorithm:
    """The HPA's replica calculation for one AverageValue metric, with default behavior."""

    target: float
    min_replicas: int
    max_replicas: int
    down_window: float = HPA_DOWN_WINDOW  # behavior.scaleDown.stabilizationWindowSeconds
    recommendations: list[tuple[float, int]] = field(default_factory=list)

    def desired(self, now: float, metric: float, current: int) -> int:
        if current == 0:  # scaling is disabled at zero replicas
            return 0
        ratio = metric / (self.target * current)
        raw = current if abs(ratio - 1.0) <= HPA_TOLERANCE else math.ceil(metric / self.target)
        raw = min(max(raw, self.min_replicas), self.max_replicas)
        self.recommendations = [(t, r) for t, r in self.recommendations if t > now - self.down_window]
        self.recommendations.append((now, raw))
        down = max(r for _, r in self.recommendations)
        desired = current
        desired = max(desired, raw)  # up: stabilization window 0 s
        desired = min(desired, down)  # down: highest recommendation of the window
        if desired > current:
            limit = max(current + HPA_UP_PODS, math.ceil(current * (1 + HPA_UP_PERCENT / 100)))
            desired = min(desired, limit)
        return min(max(desired, self.min_replicas), self.max_replicas)


class Keda:
    """A ScaledObject with the redis list-length trigger and every default."""

    prefers_idle = False
    interval = HPA_SYNC

    def __init__(self, min_replicas: int, max_replicas: int, name: str = "keda") -> None:
        self.name = name
        self.min_replicas = min_replicas
        self.hpa = HpaAlgorithm(KEDA_LIST_LENGTH, max(min_replicas, 1), max_replicas)
        self.last_poll = -math.inf
        self.last_active = -math.inf

    def tick(self, now: float, view: View, current: int) -> int:
        length = view.base_list_length
        if now - self.last_poll >= KEDA_POLLING - 1e-9:
            self.last_poll = now
            if length > KEDA_ACTIVATION_LIST_LENGTH:
                self.last_active = now
                if current == 0:
                    return max(self.min_replicas, 1)
            elif current > 0 and self.min_replicas == 0 and now - self.last_active >= KEDA_COOLDOWN:
                return 0
        return self.hpa.desired(now, float(length), current)


class HpaQueueLength:
    """An autoscaling/v2 HPA on the exporter's queue length (all lists) through Prometheus."""

    prefers_idle = False
    interval = HPA_SYNC

    def __init__(self, min_replicas: int, max_replicas: int, name: str = "hpa") -> None:
        self.name = name
        self.hpa = HpaAlgorithm(KEDA_LIST_LENGTH, max(min_replicas, 1), max_replicas)
        self.scraped = 0
        self.last_scrape = -math.inf

    def tick(self, now: float, view: View, current: int) -> int:
        if now - self.last_scrape >= SCRAPE_INTERVAL - 1e-9:
            self.last_scrape = now
            self.scraped = view.backlog
        return self.hpa.desired(now, float(self.scraped), max(current, 1))


class Clairvoyant:
    """A reference, not an autoscaler: it knows the trace's arrival rate ahead of time and runs the replicas
    that rate needs at ORACLE_UTILIZATION, from one pod start ahead, held for the scale-down
    delay. It shows what the same rules allow at best; it sees neither queue nor noise."""

    prefers_idle = True
    interval = 5.0

    def __init__(
        self,
        rate: Callable[[float], float],
        service_mean: float,
        config: PolicyConfig,
        duration: float,
        start_delay: float,
        name: str = "oracle",
    ) -> None:
        self.name = name
        self.lead = start_delay + self.interval
        self.hold = config.scale_down_delay_seconds
        grid = np.arange(-self.hold, duration + self.lead + self.interval, self.interval)
        slots = np.array([rate(max(float(t), 0.0)) for t in grid]) * service_mean / ORACLE_UTILIZATION
        needs = np.ceil(slots / config.slots_per_replica - 1e-9)
        self.needs = np.clip(needs, max(config.min_replicas, 1), config.max_replicas).astype(int)
        self.origin = float(grid[0])

    def tick(self, now: float, view: View, current: int) -> int:
        lo = round((now - self.hold - self.origin) / self.interval)
        hi = round((now + self.lead - self.origin) / self.interval)
        return int(self.needs[max(lo, 0) : max(hi + 1, 1)].max())
