"""The control loop of local mode: every interval, read all queues' stats once, run the builtin scaling loop
(queueworker.scaling.loop, the one the operator runs) on each QueueWorker's worker processes, and start or
stop processes to match.

Mode `off` runs `spec.replicas`; `keda` and `hpa` need Kubernetes, so local mode runs them as `builtin`
(and says so at start). A scale-down keeps the workers holding tasks (`queueworker:held`) and stops the
least busy first, as the operator's pod-deletion-cost does. With Redis unreachable, the policy holds the
replicas. The policy learns how long a worker takes to start: from its spawn to its readiness (the
consumer started, as its health file says), seen to within one interval.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from queueworker.api.spec import QueueWorker
from queueworker.contract import held_by_worker, sync_targets
from queueworker.local.commands import LocalContext, hostname, worker_command
from queueworker.local.embedded import free_port
from queueworker.local.supervisor import Child, Supervisor
from queueworker.local.view import Row, ScaleEvent
from queueworker.scaling.loop import ScalingLoop
from queueworker.scaling.observe import observation
from queueworker.scaling.policy import Decision, Observation, PolicyConfig
from queueworker.worker.health import FILE_NAME, read_health

THROUGHPUT_WINDOW = 15.0


@dataclass
class Managed:
    qw: QueueWorker
    manifest_dir: Path | None
    config: PolicyConfig
    desired: int = 0
    decision: Decision | None = None
    last_scale: ScaleEvent | None = None
    completions: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=256))

    @property
    def mode(self) -> str:
        return self.qw.spec.autoscaling.mode

    @property
    def key(self) -> tuple[str, str]:
        return (self.qw.namespace, self.qw.name)


def policy_config(qw: QueueWorker, scale_down_delay: float | None) -> PolicyConfig:
    overrides: dict[str, float] = {}
    if scale_down_delay is not None:
        overrides["scale_down_delay_seconds"] = scale_down_delay
    try:
        return PolicyConfig.from_spec(qw.spec, **overrides)
    except ValueError:
        if qw.spec.autoscaling.mode == "off":  # the policy is not used: bounds do not matter
            return PolicyConfig()
        raise


def throughput(samples: deque[tuple[float, int]]) -> float | None:
    if len(samples) < 2:
        return None
    (t0, c0), (t1, c1) = samples[0], samples[-1]
    return (c1 - c0) / (t1 - t0) if t1 > t0 and c1 >= c0 else None


class ProcessFleet:
    """One QueueWorker's worker processes as the scaling loop sees them (queueworker.scaling.loop.Fleet);
    worker ids are Celery hostnames."""

    def __init__(self, controller: Controller, m: Managed) -> None:
        self.controller, self.m = controller, m

    def replicas(self) -> int:
        return self.controller.running_count(self.m)

    def start_times(self, seen: Callable[[str], bool]) -> Iterable[tuple[str, float]]:
        """Spawn to ready of each process whose health file says it is ready (read once per process)."""
        now = self.controller.supervisor.clock()
        for child in self.controller.supervisor.workers_of(self.m.qw.name):
            key = f"{child.name}:{child.pid}:{child.started_at}"
            folder = child.env.get("QUEUEWORKER_STATE_DIR")
            if child.pid is None or child.stopping_since is not None or not folder or seen(key):
                continue
            data = read_health(Path(folder) / FILE_NAME)
            if data is not None and data.get("pid") == child.pid and data.get("ready"):
                yield key, now - child.started_at

    def busy(self) -> Mapping[str, int]:
        """Tasks held per live (not stopping) worker."""
        alive = {
            c.hostname
            for c in self.controller.supervisor.workers_of(self.m.qw.name)
            if c.stopping_since is None
        }
        held = self.controller.busy_by_hostname(self.m.qw.spec.queues)
        return {host: n for host, n in held.items() if host in alive}

    def scale(self, replicas: int, keep: Mapping[str, int]) -> None:
        self.m.desired = replicas
        self.controller.scale(self.m, keep)


class Controller:
    def __init__(
        self,
        managed: list[Managed],
        supervisor: Supervisor,
        ctx: LocalContext,
        client: redis.Redis,
        environ: Mapping[str, str],
    ) -> None:
        self.managed = managed
        self.supervisor = supervisor
        self.ctx = ctx
        self.client = client
        self.environ = environ
        self.broker_up = False
        self.queues = tuple(dict.fromkeys(q for m in managed for q in m.qw.spec.queues))
        self.loop = ScalingLoop()

    def write_targets(self) -> None:
        """The targets of these QueueWorkers; stale ones of their namespaces (earlier runs') removed."""
        qws = [m.qw for m in self.managed]
        sync_targets(self.client, qws, {qw.namespace for qw in qws})

    def read_stats(self) -> dict[str, Any] | None:
        from queueworker.broker.stats import queue_stats

        try:
            result = queue_stats(self.client, self.queues)
        except (redis.RedisError, OSError):
            self.broker_up = False
            return None
        self.broker_up = True
        return dict(result)

    def tick(self, now: float | None = None) -> list[Row]:
        now = time.monotonic() if now is None else now
        stats = self.read_stats()
        rows = []
        for m in self.managed:
            obs = observation(stats, m.qw.spec.queues, now) if stats is not None else None
            if obs is not None and obs.completed_total is not None:
                m.completions.append((now, obs.completed_total))
                while len(m.completions) > 2 and now - m.completions[0][0] > THROUGHPUT_WINDOW:
                    m.completions.popleft()
            if m.mode == "off":
                self.run_spec_replicas(m)
            else:
                self.autoscale(m, obs)
            rows.append(self.row(m, obs, now))
        return rows

    def run_spec_replicas(self, m: Managed) -> None:
        current = self.running_count(m)
        m.desired = m.qw.spec.replicas
        if m.desired != current and (m.last_scale is None or m.last_scale.to != m.desired):
            m.last_scale = ScaleEvent(time.time(), current, m.desired, "mode off: spec.replicas")
        self.scale(m)

    def autoscale(self, m: Managed, obs: Observation | None) -> None:
        fleet = ProcessFleet(self, m)
        current = fleet.replicas()
        decision = self.loop.step(m.key, m.config, obs, fleet)
        m.decision, m.desired = decision, decision.replicas
        if decision.replicas != current:
            m.last_scale = ScaleEvent(time.time(), current, decision.replicas, decision.reason)

    def measure_starts(self, m: Managed) -> float | None:
        """Records the start time (spawn to ready) of each worker process that became ready since the
        last tick; returns the estimate the policy gets (None until one was measured)."""
        return self.loop.learn_starts(m.key, ProcessFleet(self, m))

    def running_count(self, m: Managed) -> int:
        """Workers that exist for the policy: running or waiting for a restart, not those stopping."""
        return sum(1 for c in self.supervisor.workers_of(m.qw.name) if c.stopping_since is None)

    def scale(self, m: Managed, keep: Mapping[str, int] | None = None) -> None:
        """Start or stop workers to run `m.desired`; those in `keep` (hostname -> tasks held) are stopped
        last, the least busy first (without `keep`, the held records are read)."""
        alive = [c for c in self.supervisor.workers_of(m.qw.name) if c.stopping_since is None]
        for _ in range(m.desired - len(alive)):
            self.start_worker(m)
        extra = len(alive) - m.desired
        if extra > 0:
            busy = self.busy_by_hostname(m.qw.spec.queues) if keep is None else keep
            for child in self.victims(alive, busy)[:extra]:
                how = "busy" if busy.get(child.hostname, 0) else "idle"
                self.supervisor.sink(child.name, f"scaling down ({how}): SIGTERM, warm shutdown")
                self.supervisor.stop(child.name)

    def start_worker(self, m: Managed) -> Child:
        index = self.supervisor.free_index(m.qw.name)
        argv, env = worker_command(
            m.qw, index, self.ctx, manifest_dir=m.manifest_dir, metrics_port=free_port(), environ=self.environ
        )
        child = Child(
            name=f"{m.qw.name}-{index}",
            argv=argv,
            env=env,
            cwd=self.ctx.cwd,
            grace=float(m.qw.spec.shutdown.grace_period_seconds),
            kind="worker",
            owner=m.qw.name,
            index=index,
            hostname=hostname(m.qw, index),
        )
        return self.supervisor.start(child)

    @staticmethod
    def victims(alive: list[Child], busy: Mapping[str, int]) -> list[Child]:
        """Workers to stop first: waiting for a restart, then least busy, then newest."""
        return sorted(alive, key=lambda c: (0 if c.proc is None else 1, busy.get(c.hostname, 0), -c.index))

    def stop_all_workers(self, hurry: Callable[[], bool]) -> None:
        self.supervisor.stop_all(("worker",), interrupted=hurry)

    def busy_by_hostname(self, queues: tuple[str, ...]) -> dict[str, int]:
        """Tasks held per worker (Celery hostname); none when Redis does not answer."""
        try:
            return held_by_worker(self.client, queues)
        except (redis.RedisError, OSError):
            return {}

    def row(self, m: Managed, obs: Observation | None, now: float) -> Row:
        children = self.supervisor.workers_of(m.qw.name)
        return Row(
            name=m.qw.name,
            queues=m.qw.spec.queues,
            mode=m.mode,
            backlog=obs.backlog if obs else None,
            reserved=obs.reserved if obs else None,
            oldest_wait=obs.oldest_wait if obs else None,
            target_wait=m.qw.spec.autoscaling.target_wait_seconds,
            running=sum(1 for c in children if c.phase == "running"),
            desired=m.desired,
            stopping=sum(1 for c in children if c.phase == "stopping"),
            crashed=sum(1 for c in children if c.phase == "crashed"),
            restarts=sum(c.restarts for c in children),
            busy_slots=obs.busy_slots if obs else None,
            total_slots=obs.total_slots if obs else None,
            throughput=throughput(m.completions),
            completed=obs.completed_total if obs else None,
            decision=m.decision.reason
            if m.decision
            else ("mode off: spec.replicas" if m.mode == "off" else ""),
            last_scale=m.last_scale,
            min_replicas=m.config.min_replicas,
            max_replicas=m.config.max_replicas,
            scale_down_delay=m.config.scale_down_delay_seconds,
        )
