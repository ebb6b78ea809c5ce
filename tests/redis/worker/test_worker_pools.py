"""The runtime under the other pools local mode and app teams use (threads, solo): heartbeats report the
right slots and completions, metrics count every task, the redelivery cap and stamps still apply."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest
import redis
from queueworker import make_app

from tests.support.celery_worker import CeleryWorker, executions, write_task_module
from tests.support.redis_server import free_port
from tests.support.waiting import wait_for


@pytest.mark.parametrize(("pool", "concurrency"), [("threads", 4), ("solo", 1)])
def test_runtime_under_pool(
    pool: str,
    concurrency: int,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    redis_url: str,
    redis_client: redis.Redis,
) -> None:
    write_task_module(tmp_path)
    monkeypatch.setenv("QUEUEWORKER_BROKER_URL", redis_url)
    app = make_app("pool-producer")
    port = free_port()
    with CeleryWorker(
        "qwtasks",
        ["pool"],
        broker_url=redis_url,
        pythonpath=[tmp_path],
        pool=pool,
        concurrency=concurrency,
        metrics_port=port,
    ) as worker:
        worker.wait_ready()
        assert worker.heartbeats()["pool"]["total"] == concurrency
        for i in range(5):
            app.send_task("qwtasks.record", args=[f"p{i}", 0.05], queue="pool")
        app.send_task("qwtasks.fail", queue="pool")
        wait_for(lambda: len(executions(redis_client)) == 5, 20, message="five tasks")
        wait_for(lambda: worker.heartbeats()["pool"]["processed"] == 6, 10, message="heartbeat processed 6")
        expected = [
            'celery_task_succeeded_total{name="qwtasks.record",queue_name="pool"} 5.0',
            'celery_task_failed_total{name="qwtasks.fail",queue_name="pool"} 1.0',
            'queueworker_task_wait_seconds_count{name="qwtasks.record",queue_name="pool"} 5.0',
        ]

        def scraped() -> str:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()

        wait_for(lambda: all(line in scraped() for line in expected), 10, message=f"{expected}")
        assert int(redis_client.get("queueworker:completed:pool") or 0) == 6
