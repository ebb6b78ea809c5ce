"""Beat schedule entries in celery-redbeat's Redis store, synced from QueueWorker `schedules`.

One beat process (queueworker.beat.app, `celery beat -S queueworker.beat.scheduler:Scheduler`) fires every
entry; a Redis lock (redbeat's key) keeps a second beat from firing too. The operator and local mode call
`sync_schedules` with the desired entries of every QueueWorker they own; it creates, changes and deletes
only entries whose names start with the owner prefix (`qw/{namespace}/`, or `qw/` for everything the
platform owns), writes nothing when an entry is unchanged, and keeps an entry's last run time when its
definition changes (so an edit does not make it fire at once). Cron expressions are five fields, UTC,
in the spec's grammar (queueworker.cron): every expression the spec accepts loads.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from celery import Celery
from celery.schedules import crontab, schedule

from queueworker.api.spec import QueueWorker
from queueworker.broker.keys import BEAT_ENTRY_PREFIX
from queueworker.broker.url import parse
from queueworker.cron import celery_crontab
from queueworker.worker.brokerconf import redbeat_config

DEFAULT_KEY_PREFIX = "redbeat:"


@dataclass(frozen=True)
class BeatEntry:
    name: str  # qw/{namespace}/{queueworker}/{schedule}
    task: str
    schedule: str | float  # five-field cron expression, or an interval in seconds
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    queue: str = "celery"
    enabled: bool = True


@dataclass(frozen=True)
class SyncResult:
    created: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.deleted)


def entry_name(namespace: str, queueworker: str, schedule_name: str) -> str:
    return f"{BEAT_ENTRY_PREFIX}{namespace}/{queueworker}/{schedule_name}"


def owner_prefix(namespace: str | None = None) -> str:
    """`qw/{namespace}/`, or `qw/` (all the platform's entries) without a namespace."""
    return f"{BEAT_ENTRY_PREFIX}{namespace}/" if namespace else BEAT_ENTRY_PREFIX


def desired_entries(qw: QueueWorker) -> list[BeatEntry]:
    """The beat entries of one QueueWorker: its enabled schedules (disabled ones are absent)."""
    entries = []
    for item in qw.spec.schedules:
        if not item.enabled:
            continue
        when: str | float | None = item.cron if item.cron is not None else item.every
        if when is None:
            raise ValueError(f"{qw.namespace}/{qw.name}: schedule {item.name!r} has neither cron nor every")
        entries.append(
            BeatEntry(
                name=entry_name(qw.namespace, qw.name, item.name),
                task=item.task,
                schedule=when,
                args=tuple(item.args),
                kwargs=dict(item.kwargs),
                queue=item.queue or qw.spec.queues[0],
            )
        )
    return entries


def celery_schedule(when: str | float) -> crontab | schedule:
    """What beat runs for a schedule: a cron expression the spec accepts (queueworker.cron.celery_crontab,
    ValueError for any other string) or an interval in seconds (> 0)."""
    if isinstance(when, str):
        return celery_crontab(when)
    seconds = float(when)
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(f"invalid interval {when!r}: must be a finite number of seconds > 0")
    return schedule(run_every=timedelta(seconds=seconds))


_apps: dict[tuple[str, str], Celery] = {}


def store_app(redis_url: str, key_prefix: str = DEFAULT_KEY_PREFIX) -> Celery:
    """A small Celery app that only carries redbeat's settings for `redis_url` (no broker use)."""
    app = _apps.get((redis_url, key_prefix))
    if app is None:
        app = Celery("queueworker-beat-sync", set_as_current=False)
        app.conf.update(
            redbeat_key_prefix=key_prefix,
            enable_utc=True,
            timezone="UTC",
            **redbeat_config(parse(redis_url), 10.0),
        )
        _apps[(redis_url, key_prefix)] = app
    return app


def _redbeat_entry(app: Celery, entry: BeatEntry) -> Any:
    from redbeat import RedBeatSchedulerEntry

    return RedBeatSchedulerEntry(
        name=entry.name,
        task=entry.task,
        schedule=celery_schedule(entry.schedule),
        args=list(entry.args),
        kwargs=dict(entry.kwargs),
        options={"queue": entry.queue},
        enabled=entry.enabled,
        app=app,
    )


def _definition(redbeat_entry: Any) -> Any:
    from redbeat.decoder import RedBeatJSONEncoder

    return json.loads(
        json.dumps(
            {
                "name": redbeat_entry.name,
                "task": redbeat_entry.task,
                "args": redbeat_entry.args,
                "kwargs": redbeat_entry.kwargs,
                "options": redbeat_entry.options,
                "schedule": redbeat_entry.schedule,
                "enabled": redbeat_entry.enabled,
            },
            cls=RedBeatJSONEncoder,
        )
    )


def sync_schedules(
    redis_url: str, owner_prefix: str, entries: Iterable[BeatEntry], key_prefix: str = DEFAULT_KEY_PREFIX
) -> SyncResult:
    """Make the entries under `owner_prefix` exactly `entries`; touch nothing else. Idempotent."""
    if not owner_prefix.startswith(BEAT_ENTRY_PREFIX) or not owner_prefix.endswith("/"):
        raise ValueError(
            f"owner prefix {owner_prefix!r} must start with {BEAT_ENTRY_PREFIX!r} and end with '/'"
        )
    wanted = {e.name: e for e in entries}
    strays = [n for n in wanted if not n.startswith(owner_prefix)]
    if strays:
        raise ValueError(f"entries outside the owner prefix {owner_prefix!r}: {sorted(strays)}")
    from redbeat import RedBeatSchedulerEntry
    from redbeat.schedulers import get_redis

    app = store_app(redis_url, key_prefix)
    client = get_redis(app)
    pattern = key_prefix + "".join(f"[{c}]" if c in "*?[]\\" else c for c in owner_prefix) + "*"
    existing: dict[str, bytes | None] = {}
    for key in client.scan_iter(match=pattern, count=500):
        name = (key.decode() if isinstance(key, bytes) else str(key))[len(key_prefix) :]
        existing[name] = client.hget(key, "definition")
    created: list[str] = []
    updated: list[str] = []
    for name, entry in sorted(wanted.items()):
        new = _redbeat_entry(app, entry)
        stored = existing.get(name)
        if stored is not None and json.loads(stored) == _definition(new):
            continue
        if name in existing:
            meta = RedBeatSchedulerEntry.load_meta(new.key, app=app)
            if meta.get("last_run_at") is not None:
                new.last_run_at = meta["last_run_at"]
            updated.append(name)
        else:
            created.append(name)
        new.save()
    deleted = sorted(name for name in existing if name not in wanted)
    for name in deleted:
        RedBeatSchedulerEntry(name=name, app=app).delete()
    return SyncResult(tuple(created), tuple(updated), tuple(deleted))
