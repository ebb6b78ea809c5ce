"""Every schedule the spec accepts loads into beat: generated cron expressions (the CRD pattern's whole
grammar: names, ranges, wrapping ranges, steps, lists, 7 for Sunday) and intervals (the CRD's duration
grammar) go through parse_manifest, desired_entries and sync_schedules into Redis, are loaded back the
way celery-redbeat's scheduler loads them at each tick, and fire at the times croniter gives (day of
month AND day of week when both are restricted, Celery's rule)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from celery import Celery
from croniter import croniter
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from queueworker.api.checks import duration_seconds
from queueworker.api.spec import SpecError, parse_manifest
from queueworker.beat.schedules import desired_entries, owner_prefix, store_app, sync_schedules
from queueworker.cron import CRON
from redbeat import RedBeatSchedulerEntry

from hack.crdgen import version_schema
from tests.support.redis_server import RedisServer

EVERY = version_schema()["properties"]["spec"]["properties"]["schedules"]["items"]["properties"]["every"]
START = datetime(2026, 3, 7, 13, 17, 0, tzinfo=UTC)
GRAMMAR = settings(
    max_examples=120,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def manifest(when: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "queueworker.dev/v1alpha1",
        "kind": "QueueWorker",
        "metadata": {"name": "emails", "namespace": "shop"},
        "spec": {
            "app": "shop.tasks",
            "queues": ["emails"],
            "schedules": [{"name": "s", "task": "t.a", **when}],
        },
    }


def accepted(obj: dict[str, Any]) -> bool:
    """The model's verdict (the API server's is the same: tests/apiserver/test_grammar.py)."""
    try:
        parse_manifest(obj)
    except SpecError:
        return False
    return True


def load(redis_url: str, obj: dict[str, Any]) -> RedBeatSchedulerEntry:
    """Sync the manifest's entries as the operator and local mode do; load the one entry back as
    redbeat's scheduler does (RedBeatSchedulerEntry.from_key) and compute its due time."""
    entries = desired_entries(parse_manifest(obj))
    result = sync_schedules(redis_url, owner_prefix("shop"), entries)
    assert result.created == ("qw/shop/emails/s",)
    app: Celery = store_app(redis_url)
    entry = RedBeatSchedulerEntry.from_key("redbeat:qw/shop/emails/s", app=app)
    entry.is_due()  # what the scheduler asks at each tick
    assert entry.due_at is not None
    assert sync_schedules(redis_url, owner_prefix("shop"), []).deleted == ("qw/shop/emails/s",)
    return entry


def celery_next(entry: RedBeatSchedulerEntry, after: datetime) -> datetime:
    last, delta, _ = entry.schedule.remaining_delta(after)
    return last + delta  # type: ignore[no-any-return]


@GRAMMAR
@given(st.from_regex(CRON, fullmatch=True).filter(lambda e: len(e) <= 128))
@example("0 0 * * 7")  # Celery's crontab alone rejects these four
@example("5/15 * * * *")
@example("0 9 * JAN-mar mon-FRI")
@example("0 22-2 * * fri-mon")
@example("0 0 1 * mon")  # both day fields: the 1st when it is a Monday
def test_every_cron_the_spec_accepts_loads_and_fires_when_croniter_says(
    redis_server: RedisServer, expr: str
) -> None:
    obj = manifest({"cron": expr})
    if not accepted(obj):
        return  # only "never fires" (checked in tests/fast/unit/test_cron.py)
    redis_server.client().flushall()
    entry = load(redis_server.url, obj)
    times = croniter(expr, START, day_or=False)
    after = START
    for _ in range(3):
        want = times.get_next(datetime)
        got = celery_next(entry, after)
        assert got == want, (expr, after, got, want)
        after = got


@GRAMMAR
@given(st.from_regex(EVERY["pattern"], fullmatch=True))
def test_every_interval_the_spec_accepts_loads_with_its_length(redis_server: RedisServer, text: str) -> None:
    obj = manifest({"every": text})
    seconds = duration_seconds(text)
    assert seconds is not None
    assert accepted(obj) is (seconds > 0)
    if seconds <= 0:
        return
    redis_server.client().flushall()
    entry = load(redis_server.url, obj)
    assert entry.schedule.run_every == timedelta(seconds=seconds)
    assert entry.due_at <= datetime.now(UTC) + timedelta(seconds=seconds)
