"""Redis stopped and restarted with AOF while tasks are queued and running: `appendfsync always` and
`everysec`, stopped gracefully (SHUTDOWN) and with SIGKILL. One worker lives through all four faults and
reconnects by itself each time; every published task runs but at most the one message in transit at the
instant Redis went away. With acks_late a task whose ack was cut off may run twice (counted, not promised
away)."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import pytest
import redis

from tests.support.celery_worker import CeleryWorker
from tests.support.redis_server import RedisServer
from tests.support.reliability import Tally, producer, publish, report, runs, wait_all_ran
from tests.support.waiting import wait_for

QUEUE = "aof"
FAULTS = [("always", "shutdown"), ("always", "sigkill"), ("everysec", "shutdown"), ("everysec", "sigkill")]


def fault(server: RedisServer, how: str) -> None:
    if how == "sigkill":
        server.stop(kill=True)
        return
    assert server.proc is not None
    with contextlib.suppress(redis.ConnectionError):
        server.client().shutdown()  # SHUTDOWN: Redis flushes and fsyncs the AOF, then exits
    server.proc.wait(timeout=20)
    server.proc = None


def settled(published: list[str], recorder: redis.Redis, broker: RedisServer, timeout: float) -> bool:
    """Wait until every tag ran (True), or the broker has held nothing for longer than the visibility
    timeout, so nothing can still come back (False)."""
    deadline, idle_since = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        if wait_all_ran(published, recorder, timeout=0.5):
            return True
        client = broker.client()
        empty = client.llen(QUEUE) == 0 and client.hlen("unacked") == 0
        idle_since = (idle_since or time.monotonic()) if empty else None
        if idle_since is not None and time.monotonic() - idle_since > 12:
            return False
    return False


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_redis_restarts_with_aof_lose_no_task(
    tmp_path: Path, counting_tasks: Path, recorder_server: RedisServer, recorder: redis.Redis
) -> None:
    (tmp_path / "redis").mkdir()
    broker = RedisServer(workdir=tmp_path / "redis", appendonly="yes", appendfsync="always").start()
    env = {
        "QW_RECORDER_URL": recorder_server.url,
        "QUEUEWORKER_VISIBILITY_TIMEOUT": "10",
        "QUEUEWORKER_BROKER_SOCKET_TIMEOUT": "3",
    }
    worker = CeleryWorker(
        "reltasks",
        [QUEUE],
        broker_url=broker.url,
        pythonpath=[counting_tasks],
        env=env,
        concurrency=2,
        workdir=tmp_path / "worker",
    )
    results: dict[tuple[str, str], Tally] = {}
    try:
        worker.start().wait_ready(timeout=60)
        for fsync, how in FAULTS:
            if broker.options["appendfsync"] != fsync:  # the same data directory, restarted with the new mode
                broker.stop()
                broker.options["appendfsync"] = fsync
                broker.start()
            assert broker.client().config_get("appendfsync") == {"appendfsync": fsync}
            name = f"{fsync}-{how}"
            before = len(runs(recorder))
            published = publish(
                producer(broker.url), (f"{name}-{i:03d}" for i in range(150)), QUEUE, seconds=0.02
            )

            def some_ran(before: int = before) -> bool:
                return len(runs(recorder)) >= before + 30

            wait_for(some_ran, 60, message="part of the queue to run")
            queued, in_flight = broker.client().llen(QUEUE), broker.client().hlen("unacked")
            fault(broker, how)
            time.sleep(1.0)
            broker.start()
            assert broker.client().llen(QUEUE) + broker.client().hlen("unacked") > 0, "the AOF kept the queue"
            published += publish(producer(broker.url), (f"{name}-after-{i:02d}" for i in range(30)), QUEUE)
            all_ran = settled(published, recorder, broker, timeout=90)
            results[fsync, how] = report(
                f"Redis {how} + restart, appendfsync {fsync} ({queued} queued, "
                f"{in_flight} unacked at the fault)",
                published,
                recorder,
            )
            if not worker.running():
                (Path("/tmp") / "qw-restart-worker-exit.log").write_text(worker.log())
            assert worker.running(), f"the worker exited after the restart:\n{worker.log()[-4000:]}"
            done = runs(recorder)
            missing = [t for t in published if t not in done]
            # The atomic fetch (worker/fetch.py) records a popped message as held in the same Redis
            # operation: a reply lost to SIGKILL or SHUTDOWN leaves it held, and the worker puts it back.
            assert all_ran and not missing, (
                results[fsync, how],
                missing[:10],
                broker.client().llen(QUEUE),
                broker.client().hlen("unacked"),
                worker.log()[-3000:],
            )
            assert results[fsync, how].twice <= in_flight + 2 * worker.concurrency, "only held tasks rerun"
            wait_for(
                lambda: broker.client().llen(QUEUE) == 0 and broker.client().hlen("unacked") == 0,
                30,
                message="queue and unacked drained",
            )
    finally:
        worker.stop(timeout=10)
        broker.stop()
    assert len(results) == len(FAULTS)
    assert all(r.lost == 0 for r in results.values()), results
