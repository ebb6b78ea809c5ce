"""The task base class of make_app apps: a cap on redeliveries.

acks_late + task_reject_on_worker_lost put a task back when its worker dies, so a task that kills its
worker (OOM, segfault) would loop forever. Kombu marks every message it puts back (`redelivered` in the
delivery info: visibility-timeout restore, reject-requeue on worker lost, cold shutdown). When such a
message starts, the worker INCRs `queueworker:redeliveries:{task_id}` (keys.redeliveries_key, expiring on
its own); past QUEUEWORKER_MAX_REDELIVERIES (default 3) the task is rejected without requeue (Celery
records a FAILURE with Reject) and counted in celery_task_rejected_total. First deliveries cost nothing:
the counter is only touched for redelivered messages. Tasks declared with their own `base=` that does not
derive from QueueWorkerTask have no cap.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task
from celery.exceptions import Reject

from queueworker.app import env_int, visibility_timeout
from queueworker.keys import redeliveries_key
from queueworker.runtime import brokerclient

log = logging.getLogger(__name__)


def max_redeliveries() -> int:
    return env_int("QUEUEWORKER_MAX_REDELIVERIES", 3)


def queue_of(request: Any) -> str:
    info = getattr(request, "delivery_info", None) or {}
    return str(info.get("routing_key") or info.get("queue") or "celery")


class QueueWorkerTask(Task):
    """Base for tasks of make_app apps (see the module docstring)."""

    def before_start(self, task_id: str, args: Any, kwargs: Any) -> None:
        info = self.request.delivery_info or {}
        if not info.get("redelivered"):
            return
        client = brokerclient.client_for(self.app)
        if client is None:
            return
        cap = max_redeliveries()
        key = redeliveries_key(task_id)
        ttl = int(visibility_timeout(self.app) * (cap + 2)) + 3600
        pipe = client.pipeline()
        pipe.incr(key)
        pipe.expire(key, ttl)
        count = int(pipe.execute()[0])
        if count <= cap:
            log.warning("task %s[%s] redelivered (%d of at most %d)", self.name, task_id, count, cap)
            return
        from queueworker.runtime import metrics

        metrics.count_rejected(self.name, queue_of(self.request))
        raise Reject(f"task {self.name}[{task_id}] was redelivered {count} times "
                     f"(QUEUEWORKER_MAX_REDELIVERIES={cap}); rejected without requeue", requeue=False)
