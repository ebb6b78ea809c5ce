"""Beat: desired entries from QueueWorker schedules, sync into celery-redbeat's store (create, change,
delete only what the owner prefix covers; no write when unchanged), and two real `celery beat`
processes side by side firing each entry once per interval."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from queueworker.api.spec import QueueWorker, QueueWorkerSpec, Schedule
from queueworker.beat.schedules import BeatEntry, desired_entries, owner_prefix, sync_schedules
from queueworker.broker.keys import PUBLISHED_HEADER

from tests.support.celery_worker import REPO, WORKERS
from tests.support.waiting import wait_for


def qw(name: str, *schedules: Schedule, namespace: str = "default") -> QueueWorker:
    return QueueWorker(
        name=name,
        namespace=namespace,
        spec=QueueWorkerSpec(app="tasks:app", queues=("q1", "q2"), schedules=schedules),
    )


def writes(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return sum(
        int(stats.get(f"cmdstat_{cmd}", {}).get("calls", 0))
        for cmd in ("hset", "hsetnx", "zadd", "del", "zrem", "set")
    )


def test_desired_entries_from_schedules() -> None:
    entries = desired_entries(
        qw(
            "emails",
            Schedule(name="digest", task="shop.digest", cron="0 7 * * *", every=None, queue="q2"),
            Schedule(
                name="retry", task="shop.retry", cron=None, every=30.0, args=(1,), kwargs={"a": 2}, queue="q1"
            ),
            Schedule(name="off", task="shop.off", cron=None, every=5.0, queue="q1", enabled=False),
            namespace="shop",
        )
    )
    assert entries == [
        BeatEntry(name="qw/shop/emails/digest", task="shop.digest", schedule="0 7 * * *", queue="q2"),
        BeatEntry(
            name="qw/shop/emails/retry",
            task="shop.retry",
            schedule=30.0,
            args=(1,),
            kwargs={"a": 2},
            queue="q1",
        ),
    ]


def test_sync_creates_updates_deletes_only_owned_entries(redis_url: str, redis_client: redis.Redis) -> None:
    foreign = [BeatEntry(name="qw/other/x/y", task="t.foreign", schedule=60.0)]
    assert sync_schedules(redis_url, "qw/other/", foreign).created == ("qw/other/x/y",)
    redis_client.hset("redbeat:manual", "definition", json.dumps({"name": "manual"}))

    mine = [
        BeatEntry(name="qw/default/a/every", task="t.add", schedule=30.0, args=(1, 2), queue="q1"),
        BeatEntry(name="qw/default/a/cron", task="t.digest", schedule="0 7 * * *", queue="q2"),
    ]
    result = sync_schedules(redis_url, owner_prefix("default"), mine)
    assert result.created == ("qw/default/a/cron", "qw/default/a/every") and not result.updated
    definition = json.loads(redis_client.hget("redbeat:qw/default/a/every", "definition") or b"{}")
    assert definition["task"] == "t.add" and definition["args"] == [1, 2]
    assert definition["options"] == {"queue": "q1"}
    assert redis_client.zscore("redbeat::schedule", "redbeat:qw/default/a/cron") is not None

    before = writes(redis_client)
    again = sync_schedules(redis_url, "qw/default/", mine)
    assert not again.changed
    assert writes(redis_client) == before  # idempotent: nothing written

    meta = json.dumps(
        {
            "last_run_at": {
                "__type__": "datetime",
                "year": 2026,
                "month": 1,
                "day": 1,
                "hour": 0,
                "minute": 0,
                "second": 0,
                "microsecond": 0,
                "timezone": "UTC",
            }
        }
    )
    redis_client.hset("redbeat:qw/default/a/every", "meta", meta)
    changed = [BeatEntry(name="qw/default/a/every", task="t.add", schedule=45.0, args=(1, 2), queue="q1")]
    result = sync_schedules(redis_url, "qw/default/", changed)
    assert result.updated == ("qw/default/a/every",) and result.deleted == ("qw/default/a/cron",)
    definition = json.loads(redis_client.hget("redbeat:qw/default/a/every", "definition") or b"{}")
    assert definition["schedule"]["every"] == 45.0
    assert redis_client.hget("redbeat:qw/default/a/every", "meta") == meta.encode()  # last run kept
    assert not redis_client.exists("redbeat:qw/default/a/cron")
    assert redis_client.zscore("redbeat::schedule", "redbeat:qw/default/a/cron") is None
    # untouched: another owner's entry and an entry nobody of ours owns
    assert redis_client.exists("redbeat:qw/other/x/y") and redis_client.exists("redbeat:manual")
    assert sync_schedules(redis_url, "qw/default/", []).deleted == ("qw/default/a/every",)
    assert redis_client.exists("redbeat:qw/other/x/y")


def test_sync_refuses_bad_input(redis_url: str) -> None:
    with pytest.raises(ValueError, match="invalid cron expression '61 \\* \\* \\* \\*'"):
        sync_schedules(
            redis_url, "qw/default/", [BeatEntry(name="qw/default/a/b", task="t", schedule="61 * * * *")]
        )
    with pytest.raises(ValueError, match="outside the owner prefix"):
        sync_schedules(redis_url, "qw/default/", [BeatEntry(name="qw/prod/a/b", task="t", schedule=5.0)])
    with pytest.raises(ValueError, match="must start with 'qw/'"):
        sync_schedules(redis_url, "default/", [])


@pytest.fixture
def beats(redis_url: str) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_beat(redis_url: str, workdir: Path) -> tuple[subprocess.Popen[bytes], Path]:
    log = workdir / f"beat-{len(list(workdir.glob('beat-*.log')))}.log"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), str(WORKERS)]),
        "QUEUEWORKER_BROKER_URL": redis_url,
        "QUEUEWORKER_BEAT_LOCK_TIMEOUT": "6",
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "queueworker.beat.app",
                "beat",
                "--loglevel",
                "INFO",
                "-s",
                str(workdir / "unused-schedule"),
            ],
            env=env,
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return proc, log


def test_two_beats_side_by_side_fire_each_entry_once_per_interval(
    redis_url: str, redis_client: redis.Redis, beats: list[subprocess.Popen[bytes]]
) -> None:
    every = 2.0
    sync_schedules(
        redis_url,
        "qw/default/",
        [
            BeatEntry(
                name="qw/default/a/tick", task="tasks.add", schedule=every, args=(1, 2), queue="beat_a"
            ),
            BeatEntry(
                name="qw/default/b/tock", task="tasks.add", schedule=every, args=(3, 4), queue="beat_b"
            ),
        ],
    )
    workdir = Path(tempfile.mkdtemp(prefix="qw-beat-"))
    first, first_log = start_beat(redis_url, workdir)
    second, second_log = start_beat(redis_url, workdir)
    beats += [first, second]
    wait_for(lambda: redis_client.llen("beat_a") >= 1, 20, message="the first fire")
    time.sleep(9.0)
    for proc in beats:
        assert proc.poll() is None, "both beats keep running"
    logs = first_log.read_text() + second_log.read_text()
    assert logs.count("beat: Acquired lock") == 1  # only one of them holds the lock
    for queue in ("beat_a", "beat_b"):
        raws = redis_client.lrange(queue, 0, -1)
        stamps = sorted(json.loads(raw)["headers"][PUBLISHED_HEADER] for raw in raws)
        span = stamps[-1] - stamps[0]
        gaps = [b - a for a, b in itertools.pairwise(stamps)]
        # once per interval: as many fires as intervals in the span (+1 for the first), never two at once
        assert len(stamps) == pytest.approx(span / every + 1, abs=1), stamps
        assert min(gaps) > every / 2, gaps
        assert len(stamps) >= 4
    # the lock holder dies without releasing: the other beat takes over once the lock expires (6 s)
    first_holds = "Acquired lock" in first_log.read_text()
    holder, standby_log = (first, second_log) if first_holds else (second, first_log)
    os.killpg(holder.pid, signal.SIGKILL)
    holder.wait(timeout=10)
    killed_at = time.time()
    wait_for(lambda: "beat: Acquired lock" in standby_log.read_text(), 30, message="standby to take the lock")
    wait_for(
        lambda: (
            json.loads(redis_client.lindex("beat_a", 0) or b"{}")["headers"][PUBLISHED_HEADER] > killed_at
        ),
        20,
        message="fires to resume from the standby",
    )


def test_example_schedule_syncs(redis_url: str, redis_client: redis.Redis) -> None:
    """examples/: the default QueueWorker's `tasks.add` every 30 s becomes exactly one owned entry."""
    from queueworker.api.manifests import load_manifests

    loaded = [item.qw for item in load_manifests(REPO / "examples") if item.qw is not None]
    entries = [entry for qw in loaded for entry in desired_entries(qw)]
    assert entries == [
        BeatEntry(
            name="qw/default/default/add-every-30s",
            task="tasks.add",
            schedule=30.0,
            args=(2, 3),
            queue="celery",
        )
    ]
    assert sync_schedules(redis_url, owner_prefix("default"), entries).created == (entries[0].name,)
    assert not sync_schedules(redis_url, owner_prefix("default"), entries).changed
