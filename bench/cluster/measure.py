"""What `make bench-cluster` measures for each policy, from the API server and from the tasks' own records:

- wait: each task's start less its publish (the make_app stamp), as the task recorded them: p95 and max;
- worker-seconds: the worker pods alive (created and not yet gone, terminating ones included: they finish
  their tasks), sampled every second over the trace's duration, as the simulation counts pod-seconds;
- scale-up reaction: seconds from the burst's start to the first worker pod created after it being Ready;
- back at minReplicas: seconds from the burst's end until the Deployment's replicas are minReplicas for good;
- the worker pods' start time (creation to Ready), which the simulation's replay is given.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np


def stamp(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def ready_at(pod: Any) -> float | None:
    for cond in pod.status.conditions or []:
        if cond.type == "Ready" and cond.status == "True":
            return stamp(cond.last_transition_time)
    return None


@dataclass
class Track:
    """One policy's worker pods and replicas over time."""

    selector: str
    deployment: str
    samples: list[tuple[float, int, int]] = field(default_factory=list)  # (t, pods alive, spec.replicas)
    pods: dict[str, tuple[float, float | None]] = field(default_factory=dict)  # uid -> (created, ready)


class Sampler(threading.Thread):
    """Samples every track once a second until stopped."""

    def __init__(self, core: Any, apps: Any, namespace: str, tracks: dict[str, Track]) -> None:
        super().__init__(daemon=True)
        self.core, self.apps, self.namespace, self.tracks = core, apps, namespace, tracks
        self.halt = threading.Event()
        self.errors = 0

    def run(self) -> None:
        while not self.halt.wait(1.0):
            for track in self.tracks.values():
                try:
                    self.sample(track)
                except Exception:  # a transient API error costs one sample
                    self.errors += 1

    def sample(self, track: Track) -> None:
        now = time.time()
        pods = self.core.list_namespaced_pod(self.namespace, label_selector=track.selector).items
        alive = [p for p in pods if p.status.phase not in ("Succeeded", "Failed")]
        for pod in alive:
            created = stamp(pod.metadata.creation_timestamp) or now
            known = track.pods.get(pod.metadata.uid)
            if known is None or known[1] is None:
                track.pods[pod.metadata.uid] = (created, ready_at(pod))
        dep = self.apps.read_namespaced_deployment(track.deployment, self.namespace)
        track.samples.append((now, len(alive), int(dep.spec.replicas or 0)))

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=10)


@dataclass(frozen=True)
class Figures:
    tasks: int
    p95_wait: float
    max_wait: float
    worker_seconds: float
    reaction: float | None
    back_at_min: float | None
    start_median: float | None

    def line(self) -> str:
        def num(v: float | None) -> str:
            return "never" if v is None else f"{v:.1f}"

        return (
            f"tasks={self.tasks} p95_wait_s={self.p95_wait:.1f} max_wait_s={self.max_wait:.1f} "
            f"worker_seconds={self.worker_seconds:.0f} scale_up_reaction_s={num(self.reaction)} "
            f"back_at_min_s={num(self.back_at_min)} pod_start_s={num(self.start_median)}"
        )


def waits(records: list[str], since: float = 0.0) -> np.ndarray:
    """Start less publish of each task published from `since` on (a message an earlier, interrupted run
    left held by a worker may come back to the queue and run during this one: it is not this run's)."""
    out = []
    for raw in records:
        times = json.loads(raw)
        published = times.get("published")
        if published is not None and float(published) >= since:
            out.append(max(0.0, float(times["started"]) - float(published)))
    return np.array(out)


def worker_seconds(samples: list[tuple[float, int, int]], start: float, end: float) -> float:
    """Pods alive integrated over [start, end] from the per-second samples (each holds until the next)."""
    total = 0.0
    inside = [(t, n) for t, n, _ in samples if start <= t <= end]
    for (t0, n), (t1, _) in itertools.pairwise(inside):
        total += n * (t1 - t0)
    if inside:
        total += inside[0][1] * (inside[0][0] - start) + inside[-1][1] * (end - inside[-1][0])
    return total


def back_at_min(samples: list[tuple[float, int, int]], after: float, least: int) -> float | None:
    """Seconds from `after` until spec.replicas is `least` and stays there to the last sample."""
    since: float | None = None
    for t, _, replicas in samples:
        if t < after:
            continue
        since = (t if since is None else since) if replicas == least else None
    return None if since is None else since - after


def figures(
    track: Track, records: list[str], start: float, burst: tuple[float, float], duration: float, least: int
) -> Figures:
    w = waits(records, since=start - 1.0)
    burst_start, burst_end = start + burst[0], start + burst[1]
    fresh = [(c, r) for c, r in track.pods.values() if c >= start]
    readies = sorted(r for c, r in fresh if c >= burst_start and r is not None)
    starts = [r - c for c, r in fresh if r is not None]
    return Figures(
        tasks=len(w),
        p95_wait=float(np.percentile(w, 95)) if len(w) else float("nan"),
        max_wait=float(w.max()) if len(w) else float("nan"),
        worker_seconds=worker_seconds(track.samples, start, start + duration),
        reaction=readies[0] - burst_start if readies else None,
        back_at_min=back_at_min(track.samples, burst_end, least),
        start_median=float(np.median(starts)) if starts else None,
    )
