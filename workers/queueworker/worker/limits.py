"""The redelivery cap of make_app apps' tasks (checked by the task base, worker/task.py).

acks_late + task_reject_on_worker_lost put a task back when its worker dies, so a task that kills its
worker (OOM, segfault) would loop forever. Kombu marks every message it puts back (`redelivered` in the
delivery info: visibility-timeout restore, reject-requeue on worker lost, cold shutdown). When such a
message starts, the worker INCRs `queueworker:redeliveries:{task_id}` (keys.redeliveries_key, expiring on
its own); past QUEUEWORKER_MAX_REDELIVERIES (default 3) the task is rejected without requeue (Celery
records a FAILURE with Reject) and counted in celery_task_rejected_total. First deliveries cost nothing:
the counter is only touched for redelivered messages. Tasks declared with their own `base=` that does not
derive from QueueWorkerTask (worker/task.py) have no cap.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task
from celery.exceptions import Reject

from queueworker.broker.keys import redeliveries_key
from queueworker.worker import brokerclient
from queueworker.worker.env import visibility_timeout
from queueworker.worker.settings import current
from queueworker.worker.stamps import queue_of

log = logging.getLogger(__name__)


def max_redeliveries() -> int:
    return current().max_redeliveries


def check_redelivery(task: Task, task_id: str, request: Any) -> None:
    """Raise Reject (no requeue) when this redelivered message has come back more than the cap allows."""
    info = getattr(request, "delivery_info", None) or {}
    if not info.get("redelivered"):
        return
    client = brokerclient.client_for(task.app)
    if client is None:
        return
    cap = max_redeliveries()
    key = redeliveries_key(task_id)
    ttl = int(visibility_timeout(task.app) * (cap + 2)) + 3600
    pipe = client.pipeline()
    pipe.incr(key)
    pipe.expire(key, ttl)
    count = int(pipe.execute()[0])
    if count <= cap:
        log.warning("task %s[%s] redelivered (%d of at most %d)", task.name, task_id, count, cap)
        return
    from queueworker.worker import metrics

    metrics.count_rejected(task.name, queue_of(request))
    raise Reject(
        f"task {task.name}[{task_id}] was redelivered {count} times "
        f"(QUEUEWORKER_MAX_REDELIVERIES={cap}); rejected without requeue",
        requeue=False,
    )
