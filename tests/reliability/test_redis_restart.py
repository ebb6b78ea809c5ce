"""Redis stopped and restarted with AOF while tasks are queued and running: `appendfsync always` and
`everysec`, stopped gracefully (SHUTDOWN) and with SIGKILL. The worker reconnects by itself and every
published task runs; with acks_late a task whose ack was cut off may run twice (counted, not promised)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import redis

from tests.reliability.support import producer, publish, report, runs, wait_all_ran
from tests.support.celery_worker import CeleryWorker, wait_for
from tests.support.redis_server import RedisServer

QUEUE = "aof"


def fault(server: RedisServer, how: str) -> None:
    if how == "sigkill":
        server.stop(kill=True)
        return
    assert server.proc is not None
    client = server.client()
    with contextlib.suppress(redis.ConnectionError):
        client.shutdown()  # SHUTDOWN: Redis flushes and fsyncs the AOF, then exits
    server.proc.wait(timeout=20)
    server.proc = None


@pytest.mark.slow
@pytest.mark.parametrize("fsync", ["always", "everysec"])
@pytest.mark.parametrize("how", ["shutdown", "sigkill"])
def test_redis_restart_with_aof_loses_no_task(fsync: str, how: str, tmp_path: Path, counting_tasks: Path,
                                              recorder_server: RedisServer, recorder: redis.Redis) -> None:
    (tmp_path / "redis").mkdir()
    broker = RedisServer(workdir=tmp_path / "redis", appendonly="yes", appendfsync=fsync).start()
    env = {"QW_RECORDER_URL": recorder_server.url, "QUEUEWORKER_VISIBILITY_TIMEOUT": "10",
           "QUEUEWORKER_BROKER_SOCKET_TIMEOUT": "3"}
    worker = CeleryWorker("reltasks", [QUEUE], broker_url=broker.url, pythonpath=[counting_tasks], env=env,
                          concurrency=2, workdir=tmp_path / "worker")
    try:
        app = producer(broker.url)
        published = publish(app, (f"before-{i:03d}" for i in range(200)), QUEUE, seconds=0.02)
        worker.start().wait_ready(timeout=60)
        wait_for(lambda: len(runs(recorder)) >= 40, 60, message="part of the queue to run")
        queued = broker.client().llen(QUEUE)
        in_flight = broker.client().hlen("unacked")
        fault(broker, how)
        ran_at_fault = len(runs(recorder))
        broker.start()
        assert broker.client().llen(QUEUE) + broker.client().hlen("unacked") > 0, "the AOF kept the queue"
        published += publish(producer(broker.url), (f"after-{i:03d}" for i in range(50)), QUEUE)
        all_ran = wait_all_ran(published, recorder, timeout=90)
        result = report(f"Redis {how} + restart, appendfsync {fsync} ({queued} queued, {in_flight} unacked, "
                        f"{ran_at_fault} run at the fault)", published, recorder)
        assert worker.running(), "the worker survives the broker restart"
        assert all_ran and result.lost == 0, result
        assert result.completed == len(published)
        assert result.twice <= in_flight + 2 * worker.concurrency, "only tasks held at the fault may rerun"
        wait_for(lambda: broker.client().llen(QUEUE) == 0 and broker.client().hlen("unacked") == 0, 30,
                 message="queue and unacked drained")
    finally:
        worker.stop(timeout=10)
        broker.stop()
