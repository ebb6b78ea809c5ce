"""Worker SIGTERM and SIGKILL mid-burst, counted in the suite's published/completed/lost/run-twice form.
tests/redis/worker/test_worker_shutdown.py checks the mechanisms one by one (a running task finishes on
SIGTERM, an overlong one is requeued at once, SIGKILL's tasks come back after the visibility timeout,
the redelivery cap); this runs a burst through each signal and a replacement worker."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import redis

from tests.support.celery_worker import CeleryWorker
from tests.support.redis_server import RedisServer
from tests.support.reliability import producer, publish, report, runs, wait_all_ran
from tests.support.waiting import wait_for


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_worker_signal_mid_burst(
    signum: signal.Signals,
    tmp_path: Path,
    counting_tasks: Path,
    redis_server: RedisServer,
    redis_url: str,
    recorder_server: RedisServer,
    recorder: redis.Redis,
) -> None:
    queue = f"burst_{signum.name.lower()}"
    env = {
        "QW_RECORDER_URL": recorder_server.url,
        "QUEUEWORKER_VISIBILITY_TIMEOUT": "5",
        "QUEUEWORKER_SOFT_SHUTDOWN_TIMEOUT": "3",
    }
    first = CeleryWorker(
        "reltasks",
        [queue],
        broker_url=redis_url,
        pythonpath=[counting_tasks],
        env=env,
        workdir=tmp_path / "first",
    )
    second = CeleryWorker(
        "reltasks",
        [queue],
        broker_url=redis_url,
        pythonpath=[counting_tasks],
        env=env,
        workdir=tmp_path / "second",
    )
    broker = redis_server.client()
    try:
        first.start().wait_ready(timeout=60)
        published = publish(producer(redis_url), (f"t{i:03d}" for i in range(120)), queue, seconds=0.05)
        wait_for(lambda: len(runs(recorder)) >= 20, 60, message="part of the burst to run")
        held = broker.hlen("unacked")
        if signum == signal.SIGKILL:
            first.kill()
        else:
            first.terminate()
            assert first.wait(timeout=20) == 0, "a warm/soft shutdown inside the grace period"
        ran_by_first = len(runs(recorder))
        second.start().wait_ready(timeout=60)
        all_ran = wait_all_ran(published, recorder, timeout=60)
    finally:
        first.stop(timeout=5)
        second.stop(timeout=10)
    result = report(
        f"worker {signum.name} mid-burst ({held} unacked at the signal, {ran_by_first} run by "
        f"the first worker)",
        published,
        recorder,
    )
    assert all_ran and result.lost == 0, result
    assert result.twice <= held + first.concurrency, "only what the signalled worker held may run again"
    if signum == signal.SIGTERM:
        assert result.twice == 0, "a soft shutdown finishes or requeues, it does not run anything twice"
    assert broker.llen(queue) == 0 and broker.hlen("unacked") == 0
