"""The task base class of make_app apps: the redelivery cap (worker/limits.py) and the per-task metrics.

Task metrics (started, succeeded, runtime, wait; worker/metrics.py) are counted here, in the base class's
`before_start` / `after_return`, which Celery's tracer calls directly: a signal receiver costs a dispatch
per signal per task, several times what the counting itself costs. When the worker is built (the
TaskMetrics step, before the pool forks) every registered task is checked: one whose class keeps these two
methods as they are is counted by them; any other (a `base=` not derived from QueueWorkerTask, or a
subclass overriding either method, which may not call super()) is counted by task_prerun/task_postrun
receivers instead, connected only when such a task exists. Either way each task is counted once.
Failures are counted by the task_failure receiver (it also sees failures raised in the main process: worker
lost, time limit).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, Task, bootsteps

from queueworker.worker import metrics
from queueworker.worker.limits import check_redelivery

log = logging.getLogger(__name__)


class QueueWorkerTask(Task):
    """Base for tasks of make_app apps (see the module docstring). Subclasses overriding `before_start`
    or `after_return` should call super() to keep the redelivery cap."""

    #: Set at worker start on tasks whose metrics these methods count (see `assign_metrics`).
    _qw_metrics_in_base = False

    def before_start(self, task_id: str, args: Any, kwargs: Any) -> None:
        request = self.request
        check_redelivery(self, task_id, request)
        if self._qw_metrics_in_base:
            metrics.task_started(task_id, self.name, request)

    def after_return(  # noqa: PLR0917
        self,
        status: str,
        retval: Any,
        task_id: str,
        args: Any,
        kwargs: Any,
        einfo: Any,
    ) -> None:
        if self._qw_metrics_in_base:
            metrics.task_finished(task_id, self.name, status)


def counts_itself(task: Any) -> bool:
    """True when `task` is a QueueWorkerTask whose before_start and after_return are the base's."""
    cls = type(task)
    return (
        isinstance(task, QueueWorkerTask)
        and cls.before_start is QueueWorkerTask.before_start
        and cls.after_return is QueueWorkerTask.after_return
    )


def assign_metrics(app: Celery) -> list[str]:
    """Mark the tasks the base class counts; connect the signal receivers for the others (returned)."""
    others = []
    for task in list(app.tasks.values()):
        if counts_itself(task):
            task._qw_metrics_in_base = True
        else:
            others.append(task.name)
    if others:
        metrics.connect_task_signals()
    return sorted(others)


class TaskMetrics(bootsteps.Step):
    """Worker step: which tasks the base class counts, decided when the worker is built (every registered
    task is known then, and the prefork pool, forked later in the Pool step's `create`, inherits the marks).
    Logging is set up by then."""

    label = "QueueWorker task metrics"

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        by_signals = assign_metrics(worker.app)
        if by_signals:
            log.info(
                "tasks counted by signal receivers (their class is not a plain QueueWorkerTask): %s",
                ", ".join(by_signals),
            )
