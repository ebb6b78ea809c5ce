"""Safe shutdown and loss: SIGTERM (remapped to a soft shutdown) lets a running task finish; what cannot
finish in the soft-shutdown window goes back to the queue at once; SIGKILL of the whole worker loses
nothing once the visibility timeout passes; a task that keeps killing its worker is rejected after the
redelivery cap instead of looping forever."""

from __future__ import annotations

import json
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
import redis
from queueworker import make_app

from tests.support.celery_worker import CeleryWorker, as_text, executions, write_task_module
from tests.support.redis_server import free_port
from tests.support.waiting import wait_for

SOFT: dict[str, str] = {}  # SIGTERM as Kubernetes sends it; worker/shutdown.py bounds it


@pytest.fixture
def tasks_dir(tmp_path: Path) -> Path:
    write_task_module(tmp_path / "mod")
    return tmp_path / "mod"


def producer(monkeypatch: pytest.MonkeyPatch, redis_url: str, **env: str):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("QUEUEWORKER_BROKER_URL", redis_url)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return make_app("shutdown-producer")


def metrics_text(port: int) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()


def test_sigterm_mid_task_completes_within_grace(
    monkeypatch: pytest.MonkeyPatch, tasks_dir: Path, redis_url: str, redis_client: redis.Redis
) -> None:
    grace = 10.0
    app = producer(monkeypatch, redis_url)
    env = {**SOFT, "QUEUEWORKER_SOFT_SHUTDOWN_TIMEOUT": str(grace - 2)}
    with CeleryWorker("qwtasks", ["term"], broker_url=redis_url, pythonpath=[tasks_dir], env=env) as worker:
        worker.wait_ready()
        app.send_task("qwtasks.record", args=["long", 3.0], queue="term")
        wait_for(lambda: redis_client.lrange("test:started", 0, -1) == [b"long"], 10, message="task start")
        worker.terminate()
        assert worker.wait(timeout=grace) == 0
    assert executions(redis_client) == ["long"]
    assert redis_client.llen("term") == 0 and redis_client.hlen("unacked") == 0
    assert "Cold shutdown" in worker.log() or "Warm shutdown" in worker.log()


def test_task_longer_than_soft_shutdown_is_requeued_at_once(
    monkeypatch: pytest.MonkeyPatch, tasks_dir: Path, redis_url: str, redis_client: redis.Redis
) -> None:
    app = producer(monkeypatch, redis_url)
    env = {**SOFT, "QUEUEWORKER_SOFT_SHUTDOWN_TIMEOUT": "1.5"}
    with CeleryWorker("qwtasks", ["term2"], broker_url=redis_url, pythonpath=[tasks_dir], env=env) as worker:
        worker.wait_ready()
        app.send_task("qwtasks.record", args=["too-long", 30.0], queue="term2")
        wait_for(lambda: redis_client.llen("test:started") == 1, 10, message="task start")
        worker.terminate()
        assert worker.wait(timeout=15) is not None
    # back in its queue now, marked redelivered, not parked in `unacked` for the visibility timeout
    assert redis_client.llen("term2") == 1
    assert redis_client.hlen("unacked") == 0
    message = json.loads(redis_client.lindex("term2", -1) or b"{}")
    assert message["headers"]["task"] == "qwtasks.record"
    assert message["headers"].get("redelivered") is True
    assert executions(redis_client) == []


def test_sigkill_mid_burst_every_task_runs_after_restart(
    monkeypatch: pytest.MonkeyPatch, tasks_dir: Path, redis_url: str, redis_client: redis.Redis
) -> None:
    visibility = 5.0
    env = {"QUEUEWORKER_VISIBILITY_TIMEOUT": str(visibility)}
    app = producer(monkeypatch, redis_url, **env)
    burst = [f"t{i:03d}" for i in range(60)]
    first = CeleryWorker("qwtasks", ["burst"], broker_url=redis_url, pythonpath=[tasks_dir], env=env)
    second = CeleryWorker("qwtasks", ["burst"], broker_url=redis_url, pythonpath=[tasks_dir], env=env)
    try:
        first.start().wait_ready()
        for tag in burst:
            app.send_task("qwtasks.record", args=[tag, 0.05], queue="burst")
        wait_for(lambda: redis_client.llen("test:executions") >= 15, 30, message="part of the burst to run")
        first.kill()
        in_flight = redis_client.hlen("unacked")
        killed_at = time.monotonic()
        second.start().wait_ready()
        wait_for(
            lambda: set(executions(redis_client)) >= set(burst),
            visibility + 25,
            message="every task of the burst to run",
        )
        recovered_in = time.monotonic() - killed_at
    finally:
        first.stop(timeout=5)
        second.stop(timeout=10)
    runs = Counter(executions(redis_client))
    twice = sorted(tag for tag, n in runs.items() if n > 1)
    starts = Counter(as_text(raw) for raw in redis_client.lrange("test:started", 0, -1))
    restarted = sorted(tag for tag, n in starts.items() if n > 1)
    print(
        f"\nSIGKILL mid-burst: {len(burst)} tasks, {in_flight} unacked at kill, all ran within "
        f"{recovered_in:.1f}s of the kill; completed twice: {len(twice)} {twice}; "
        f"started again after being killed mid-run: {len(restarted)} {restarted}"
    )
    assert set(runs) == set(burst)
    assert len(twice) <= in_flight  # only what the killed worker held can run again
    assert redis_client.llen("burst") == 0 and redis_client.hlen("unacked") == 0


def test_redelivery_cap_rejects_a_task_that_keeps_killing_its_worker(
    monkeypatch: pytest.MonkeyPatch, tasks_dir: Path, redis_url: str, redis_client: redis.Redis
) -> None:
    app = producer(monkeypatch, redis_url)
    port = free_port()
    env = {"QUEUEWORKER_MAX_REDELIVERIES": "2"}
    with CeleryWorker(
        "qwtasks", ["cap"], broker_url=redis_url, pythonpath=[tasks_dir], env=env, metrics_port=port
    ) as worker:
        worker.wait_ready()
        result = app.send_task("qwtasks.crash", args=["boom"], queue="cap")
        # first delivery + 2 redeliveries crash the pool child; the 4th delivery is rejected
        rejected = 'celery_task_rejected_total{name="qwtasks.crash",queue_name="cap"} 1.0'
        wait_for(lambda: rejected in metrics_text(port), 40, interval=0.3, message="crash task rejected")
        assert redis_client.llen("test:crashes") == 3
        assert int(redis_client.get(f"queueworker:redeliveries:{result.id}") or 0) == 3
        # nothing left to loop on, and the worker keeps going
        assert redis_client.llen("cap") == 0
        wait_for(lambda: redis_client.hlen("unacked") == 0, 10, message="unacked empty")
        app.send_task("qwtasks.record", args=["after"], queue="cap")
        wait_for(lambda: executions(redis_client) == ["after"], 20, message="a later task to run")
        assert worker.running()
        assert rejected in metrics_text(port)
        assert 'celery_task_failed_total{name="qwtasks.crash"' not in metrics_text(port)
