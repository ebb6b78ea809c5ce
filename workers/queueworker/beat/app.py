"""The beat process's app: `celery -A queueworker.beat.app beat` (the scheduler is set here).

celery-redbeat keeps the schedule in Redis (entries written by `schedules.sync_schedules`) and holds
a lock there, so a second beat started by mistake (a rollout overlap, local mode twice) waits
instead of firing every entry twice. make_app sets redbeat_redis_url to the broker,
redbeat_lock_timeout from QUEUEWORKER_BEAT_LOCK_TIMEOUT (default 30 s: how long a killed beat's lock
blocks its successor) and beat_max_loop_interval below a third of it, so the holder renews in time.
Fired tasks carry the publish stamp like any make_app publish. The scheduler (beat/scheduler.py) is
redbeat's, made to outlive a broker failover: the process stays up and never fires a due time twice.
"""

from __future__ import annotations

from queueworker.worker.app import make_app

app = make_app("queueworker-beat", beat_scheduler="queueworker.beat.scheduler:Scheduler")
