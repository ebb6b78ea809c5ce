"""Heartbeats in Redis (docs/internals.md): busy/total slots while tasks run, completion counters, and
the record vanishing after the worker dies — at once on a clean shutdown, within the TTL after SIGKILL."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import redis
from celery import Celery
from queueworker import make_app
from queueworker.broker.keys import completed_key, heartbeat_key

from tests.support.celery_worker import CeleryWorker, as_text, write_task_module
from tests.support.waiting import wait_for

SHORT_TTL = {"QUEUEWORKER_HEARTBEAT_TTL": "3"}


@pytest.fixture
def producer(monkeypatch: pytest.MonkeyPatch, redis_url: str) -> Celery:
    monkeypatch.setenv("QUEUEWORKER_BROKER_URL", redis_url)
    return make_app("hb-producer")


def test_heartbeat_reports_busy_and_total_slots(
    tmp_path: Path, redis_url: str, redis_client: redis.Redis, producer: Celery
) -> None:
    write_task_module(tmp_path)
    with CeleryWorker("qwtasks", ["hb"], broker_url=redis_url, concurrency=3, pythonpath=[tmp_path]) as w:
        w.wait_ready()
        record = w.heartbeats()["hb"]
        assert set(record) == {"hostname", "pid", "busy", "total", "processed", "ts"}
        assert record["hostname"] == w.hostname and record["pid"] == w.pid
        assert record["total"] == 3 and record["busy"] == 0
        for i in range(2):
            producer.send_task("qwtasks.record", args=[f"slow{i}", 3.0], queue="hb")
        wait_for(lambda: w.heartbeats()["hb"]["busy"] == 2, 10, message="busy == 2 while two tasks run")
        assert 0 < redis_client.ttl(heartbeat_key("hb")) <= 20  # HEARTBEAT_TTL
        wait_for(
            lambda: w.heartbeats()["hb"]["busy"] == 0 and w.heartbeats()["hb"]["processed"] == 2,
            15,
            message="busy back to 0, processed 2",
        )
        assert int(redis_client.get(completed_key("hb")) or 0) == 2


def test_heartbeat_removed_on_shutdown_and_expires_after_sigkill(
    tmp_path: Path, redis_url: str, redis_client: redis.Redis
) -> None:
    write_task_module(tmp_path)
    key = heartbeat_key("hbq")
    clean = CeleryWorker("qwtasks", ["hbq"], broker_url=redis_url, pythonpath=[tmp_path], env=SHORT_TTL)
    killed = CeleryWorker("qwtasks", ["hbq"], broker_url=redis_url, pythonpath=[tmp_path], env=SHORT_TTL)
    survivor = CeleryWorker("qwtasks", ["hbq"], broker_url=redis_url, pythonpath=[tmp_path], env=SHORT_TTL)
    try:
        for worker in (clean, killed, survivor):
            worker.start()
        for worker in (clean, killed, survivor):
            worker.wait_ready()
        assert {as_text(f) for f in redis_client.hkeys(key)} == {
            clean.hostname,
            killed.hostname,
            survivor.hostname,
        }
        assert clean.stop() == 0
        assert not redis_client.hexists(key, clean.hostname)  # HDEL on shutdown, no wait
        killed.kill()
        # the survivor prunes the dead worker's field once its ts is older than the TTL
        wait_for(lambda: not redis_client.hexists(key, killed.hostname), 15, message="dead field pruned")
        assert redis_client.hexists(key, survivor.hostname)
        entry = json.loads(redis_client.hget(key, survivor.hostname) or b"{}")
        assert entry["pid"] == survivor.pid
        survivor.kill()
        # nobody left to write: the whole hash expires
        wait_for(lambda: not redis_client.exists(key), 15, message="heartbeat hash to expire")
        with pytest.raises(ProcessLookupError):
            os.kill(survivor.pid, 0)
    finally:
        for worker in (clean, killed, survivor):
            worker.stop(timeout=5)


@pytest.mark.parametrize("pool", ["prefork", "threads"])
def test_tasks_running_at_sigterm_are_counted_once_they_finish(
    tmp_path: Path, redis_url: str, redis_client: redis.Redis, producer: Celery, pool: str
) -> None:
    """A warm shutdown lets running tasks finish; their completions reach completed:{queue} even though
    the heartbeat thread stopped before the pool drained (the e2e suite's deleted pod counted 0 of 2)."""
    write_task_module(tmp_path)
    queue = f"hbterm-{pool}"
    redis_client.delete(completed_key(queue))
    with CeleryWorker("qwtasks", [queue], broker_url=redis_url, concurrency=2, pool=pool,
                      pythonpath=[tmp_path]) as w:  # fmt: skip
        w.wait_ready()
        for i in range(2):
            producer.send_task("qwtasks.record", args=[f"term{i}", 2.0], queue=queue)
        wait_for(lambda: w.heartbeats()[queue]["busy"] == 2, 10, message="two tasks running")
        w.terminate()
        assert w.wait(30) == 0, w.log()
    assert "succeeded" in w.log()
    assert int(redis_client.get(completed_key(queue)) or 0) == 2
