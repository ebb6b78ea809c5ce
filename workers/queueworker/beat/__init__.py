"""The one beat: schedule entries synced into celery-redbeat's store (schedules) and the beat
process's app (app: `celery -A queueworker.beat.app beat`)."""
