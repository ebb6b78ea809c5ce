"""install(app): the worker's hooks on a make_app app, one concern per module.

Pieces with the worker's or the consumer's lifetime are Celery bootsteps. Celery orders each blueprint from
the steps' `requires` (and starts the Consumer step, and in the consumer the event loop, last), so the order
below is not significant:

- fetch.Identity (worker): names the holder and starts the lease, at build time (nothing before it);
- metrics.MetricsDir (worker): the multiprocess directory, at build time, before any step creates (the
  prefork pool forks in the Pool step's create, and inherits it);
- metrics.MetricsServer (worker) requires MetricsDir: serves the sum of the files there;
- task.TaskMetrics (worker): marks the tasks the base class counts, at build time (the pool inherits it);
- poolfds.PoolFds (worker) requires Pool: before the consumer registers the pool with the event loop;
- heartbeats.Heartbeats (worker) requires Identity (a worker it announces holds its lease) and Pool (its
  concurrency is the record's total);
- healthfile.LoopTick (consumer) requires Tasks: the loop-turning timer on the consumer's timer.

What stays a signal, and why (Celery offers no bootstep for it):

- stamps (before_task_publish): every publish of every process; producers and beat have no bootsteps;
- task- and message-level events (task_received: metrics, heartbeats; task_failure, task_retry,
  task_unknown, task_rejected: metrics): once per task, where Celery raises them; task_prerun and
  task_postrun (metrics, only for tasks the base class does not count) likewise;
- worker_process_shutdown (metrics): runs in the exiting pool process, where no bootstep runs;
- worker_shutting_down (fetch's stop flag, shutdown's bound): sent from the signal handler when the
  shutdown is asked for, before any step stops; a step's stop would come after the drain it bounds;
- worker_ready (healthfile): sent from inside the event loop, which the consumer's last step runs; that
  step's start never returns, so no step can follow it;
- worker_shutdown (the lease's end, the last metric batch and the private metrics directory, the health
  file's removal): after every step stopped, the pool's drain included. A step stops in the reverse of its
  start order, and only a step the Pool step requires would stop after it; Pool cannot be made to.
"""

from __future__ import annotations

from celery import Celery

from queueworker.worker import (
    fetch,
    healthfile,
    heartbeats,
    metrics,
    poolfds,
    shutdown,
    stamps,
    task,
)

#: app.steps['worker'], ordered by Celery from their `requires`.
WORKER_STEPS = (
    fetch.Identity,
    metrics.MetricsDir,
    metrics.MetricsServer,
    task.TaskMetrics,
    poolfds.PoolFds,
    heartbeats.Heartbeats,
)
#: app.steps['consumer'].
CONSUMER_STEPS = (healthfile.LoopTick,)


def install(app: Celery) -> None:
    """Add the bootsteps to `app` and connect the signal receivers (once per process)."""
    app.steps["worker"].update(WORKER_STEPS)
    app.steps["consumer"].update(CONSUMER_STEPS)
    stamps.connect()
    fetch.connect()
    metrics.connect()
    healthfile.connect()
    heartbeats.connect()
    shutdown.connect(app)
