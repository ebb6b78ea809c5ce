"""A discrete-event simulation of one Celery queue on Redis, its worker pods and one autoscaler.

Tasks arrive into the queue (the base list), idle worker slots take the oldest task (BRPOP order: the
slot idle longest gets it), pods start `start_delay` seconds after they are created, and the
autoscaler (a `Controller`) is asked for replicas on its own clock. Pods removed by a scale-down stop
taking tasks and end when their running tasks finish (warm shutdown); which pods go is the
controller's choice of rule (idle first with pod-deletion-cost, else the ReplicaSet's newest first); a
controller that marks the pods to keep (`View.keep`, the operator's deletion costs by tasks held) has its
marks honoured first.
Worker heartbeats (busy/total slots and the completed counter) refresh every 5 s, as in the runtime.
Cost is pod-seconds from creation to end, over the trace's duration.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from queueworker.broker.keys import HEARTBEAT_INTERVAL

#: Seconds from a pod's creation to its worker consuming (image cached, Celery booted).
START_DELAY = 10.0
#: Seconds between the samples kept for plots.
SAMPLE_INTERVAL = 5.0

#: Seconds past the trace's end after which tasks still waiting count as waiting until then.
_OVERTIME = 3600.0

_ARRIVAL, _DONE, _READY, _TICK, _HEARTBEAT, _SAMPLE = range(6)


@dataclass
class Pod:
    id: int
    created: float
    slots: int
    ready: bool = False
    busy: int = 0
    draining: bool = False
    ended: float | None = None


@dataclass(frozen=True)
class Heartbeat:
    """What the workers last reported (the probe's busy/total slots, workers, completed counter)."""

    busy: int = 0
    total: int = 0
    workers: int = 0
    completed: int = 0


class View:
    """What an autoscaler can read at a tick: Redis (live) and the last heartbeats."""

    def __init__(self, sim: Simulation) -> None:
        self._sim = sim

    @property
    def backlog(self) -> int:
        return len(self._sim.queue)

    @property
    def base_list_length(self) -> int:
        return len(self._sim.queue)  # every simulated task is published without a priority

    @property
    def reserved(self) -> int:
        return self._sim.running

    @property
    def oldest_wait(self) -> float | None:
        q = self._sim.queue
        return self._sim.now - self._sim.arrival[q[0]] if q else None

    @property
    def heartbeat(self) -> Heartbeat:
        return self._sim.heartbeat

    @property
    def pod_starts(self) -> list[tuple[int, float]]:
        """(pod id, seconds from creation to ready) of every pod that became ready, in that order: what
        the operator reads from the pods' Ready conditions."""
        return self._sim.pod_starts

    @property
    def busy(self) -> dict[int, int]:
        """Tasks each live pod holds now (pod id -> count), as the held records say: no heartbeat's delay."""
        return {p.id: p.busy for p in self._sim.pods if p.ended is None and not p.draining}

    def keep(self, marks: dict[int, int]) -> None:
        """Mark pods to keep at the next scale-downs (pod id -> tasks held; unmarked pods go first, then the
        least marked), as the operator's pod-deletion-cost annotations do. Replaces the previous marks."""
        self._sim.marks = dict(marks)


class Controller(Protocol):
    name: str
    interval: float  # seconds between ticks
    prefers_idle: bool  # scale-downs remove idle pods first (pod-deletion-cost)

    def tick(self, now: float, view: View, current: int) -> int: ...


@dataclass
class Result:
    policy: str
    waits: np.ndarray
    cost: float  # pod-seconds within the trace's duration
    ups: int
    downs: int
    samples: list[tuple[float, int, int]] = field(default_factory=list)  # (t, backlog, replicas)


class Simulation:
    def __init__(
        self,
        arrival: np.ndarray,
        service: np.ndarray,
        controller: Controller,
        *,
        duration: float,
        concurrency: int,
        initial_replicas: int,
        phase: float = 0.0,
        start_delay: float = START_DELAY,
    ) -> None:
        self.arrival = arrival
        self.service = service
        self.controller = controller
        self.duration = duration
        self.concurrency = concurrency
        self.start_delay = start_delay
        self.now = 0.0
        self.queue: deque[int] = deque()
        self.free: deque[Pod] = deque()  # one entry per idle slot, longest idle first
        self.pods: list[Pod] = []
        self.running = 0
        self.completed = 0
        self.heartbeat = Heartbeat()
        self.start = np.full(len(arrival), np.nan)
        self.ups = self.downs = 0
        self.samples: list[tuple[float, int, int]] = []
        self.pod_starts: list[tuple[int, float]] = []
        #: Pods a controller marked to keep (View.keep): pod id -> tasks held when marked.
        self.marks: dict[int, int] = {}
        self._events: list[tuple[float, int, int, int]] = []
        self._seq = 0
        for i, t in enumerate(arrival):
            self._push(float(t), _ARRIVAL, i)
        for _ in range(initial_replicas):
            self._create_pod(ready=True)
        self._push(phase, _TICK, 0)
        self._push(phase % HEARTBEAT_INTERVAL + HEARTBEAT_INTERVAL / 2, _HEARTBEAT, 0)
        self._push(0.0, _SAMPLE, 0)

    def _push(self, t: float, kind: int, arg: int) -> None:
        self._seq += 1
        heapq.heappush(self._events, (t, self._seq, kind, arg))

    @property
    def replicas(self) -> int:
        return sum(1 for p in self.pods if p.ended is None and not p.draining)

    def _create_pod(self, ready: bool = False) -> None:
        pod = Pod(len(self.pods), self.now, self.concurrency)
        self.pods.append(pod)
        if ready:
            self._ready(pod)
        else:
            self._push(self.now + self.start_delay, _READY, pod.id)

    def _ready(self, pod: Pod) -> None:
        if pod.ended is not None or pod.draining:
            return
        pod.ready = True
        if self.now > pod.created:  # not one of the replicas running from the start
            self.pod_starts.append((pod.id, self.now - pod.created))
        self.free.extend([pod] * pod.slots)
        self._dispatch()

    def _dispatch(self) -> None:
        while self.queue and self.free:
            pod = self.free.popleft()
            if pod.draining or pod.ended is not None:
                continue
            task = self.queue.popleft()
            self.start[task] = self.now
            pod.busy += 1
            self.running += 1
            self._push(self.now + float(self.service[task]), _DONE, pod.id)

    def _done(self, pod: Pod) -> None:
        pod.busy -= 1
        self.running -= 1
        self.completed += 1
        if pod.draining:
            if pod.busy == 0:
                pod.ended = self.now
        else:
            self.free.append(pod)
            self._dispatch()

    def _remove(self, n: int) -> None:
        live = [p for p in self.pods if p.ended is None and not p.draining]
        if self.controller.prefers_idle:  # pod-deletion-cost: starting, unmarked, then idle, least busy
            live.sort(key=lambda p: (p.ready, self.marks.get(p.id, 0), p.busy, -p.created))
        else:  # ReplicaSet ranking: starting pods first, then the newest
            live.sort(key=lambda p: (p.ready, -p.created))
        for pod in live[:n]:
            pod.draining = True
            if pod.busy == 0:
                pod.ended = self.now

    def _scale(self, desired: int) -> None:
        current = self.replicas
        if desired > current:
            self.ups += 1
            for _ in range(desired - current):
                self._create_pod()
        elif desired < current:
            self.downs += 1
            self._remove(current - desired)

    def _beat(self) -> None:
        alive = [p for p in self.pods if p.ended is None and p.ready]
        self.heartbeat = Heartbeat(
            busy=sum(p.busy for p in alive),
            total=sum(p.slots for p in alive),
            workers=len(alive),
            completed=self.completed,
        )

    def run(self) -> Result:
        view = View(self)
        pending = len(self.arrival)
        while self._events:
            t, _, kind, arg = heapq.heappop(self._events)
            if t > self.duration and (self.completed >= pending or t > self.duration + _OVERTIME):
                break
            self.now = t
            if kind == _ARRIVAL:
                self.queue.append(arg)
                self._dispatch()
            elif kind == _DONE:
                self._done(self.pods[arg])
            elif kind == _READY:
                self._ready(self.pods[arg])
            elif kind == _TICK:
                self._scale(self.controller.tick(t, view, self.replicas))
                self._push(t + self.controller.interval, _TICK, 0)
            elif kind == _HEARTBEAT:
                self._beat()
                self._push(t + HEARTBEAT_INTERVAL, _HEARTBEAT, 0)
            else:
                self.samples.append((t, len(self.queue), self.replicas))
                self._push(t + SAMPLE_INTERVAL, _SAMPLE, 0)
        end = self.duration
        cost = sum(
            min(p.ended if p.ended is not None else end, end) - p.created
            for p in self.pods
            if p.created < end
        )
        started = np.where(np.isnan(self.start), self.now, self.start)
        return Result(self.controller.name, started - self.arrival, cost, self.ups, self.downs, self.samples)
