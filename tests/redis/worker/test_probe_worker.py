"""The probe against a real `celery worker` (make_app app, acks_late, prefetch 1): in-flight tasks show
as reserved, not as an idle queue; heartbeats give workers and slots; completions are counted."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis
from celery import Celery
from queueworker import make_app
from queueworker.broker import keys
from queueworker.broker.stats import queue_stats

from tests.support.celery_worker import CeleryWorker
from tests.support.waiting import wait_for

QUEUE = "held"


@pytest.fixture
def producer(redis_url: str) -> Iterator[Celery]:
    app = make_app("probe-worker-tests", broker_url=redis_url)
    yield app
    app.close()


def heartbeat(client: redis.Redis, host: str) -> dict[str, float]:
    raw = client.hget(keys.heartbeat_key(QUEUE), host)
    return json.loads(raw) if raw else {}


def test_in_flight_tasks_priorities_heartbeats_and_completions(
    redis_url: str, redis_client: redis.Redis, producer: Celery
) -> None:
    worker = CeleryWorker("tasks", [QUEUE], broker_url=redis_url, concurrency=2, pool="threads")
    with worker:
        worker.wait_ready()
        for _ in range(4):
            producer.send_task("tasks.taskA", kwargs={"seconds": 0}, queue=QUEUE)
        wait_for(lambda: redis_client.get(keys.completed_key(QUEUE)) == b"4", 30, message="4 completions")

        for _ in range(2):  # both slots busy for the rest of the test; acks_late keeps them unacked
            producer.send_task("tasks.taskA", kwargs={"seconds": 300}, queue=QUEUE)
        wait_for(
            lambda: redis_client.hlen(keys.UNACKED_HASH) == 2 and redis_client.llen(QUEUE) == 0,
            30,
            message="two tasks in flight",
        )
        wait_for(lambda: heartbeat(redis_client, worker.hostname).get("busy") == 2, 30, message="busy 2")
        for priority in (0, 3, 6, 9):
            producer.send_task("tasks.taskA", kwargs={"seconds": 0}, queue=QUEUE, priority=priority)
        oldest = json.loads(redis_client.lindex(QUEUE, -1) or b"{}")["headers"][keys.PUBLISHED_HEADER]

        beat = heartbeat(redis_client, worker.hostname)
        now = beat["ts"] + 1.0
        stats = queue_stats(redis_client, [QUEUE], now=now)[QUEUE]
        assert stats.depths == (1, 1, 1, 1)
        assert stats.depth == 4
        assert stats.reserved == 2
        assert (stats.workers, stats.busy_slots, stats.total_slots) == (1, 2, 2)
        assert stats.completed_total == 4
        assert stats.oldest_wait == now - oldest
        assert stats.orphaned is False

        worker.kill()  # SIGKILL: no goodbye, its heartbeat stays until it ages out
        later = heartbeat(redis_client, worker.hostname)["ts"] + keys.HEARTBEAT_TTL + 0.5
        stats = queue_stats(redis_client, [QUEUE], now=later)[QUEUE]
        assert (stats.workers, stats.busy_slots, stats.total_slots) == (0, 0, 0)
        assert stats.reserved == 2  # held by a dead worker until the visibility timeout
        assert stats.depth == 4
        assert stats.orphaned is True
