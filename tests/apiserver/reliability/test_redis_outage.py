"""Redis unreachable for a minute: the broker process is frozen (SIGSTOP), so every connection hangs as in
a network partition. A real worker must resume consuming after it returns (Celery's known reconnect hang)
and the real operator's builtin autoscaler must hold replicas the whole minute (no observation = hold)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kopf
import pytest
import redis

from tests.support.celery_worker import CeleryWorker
from tests.support.kubeapi import DEPLOYMENTS, Api
from tests.support.operator_harness import eventually
from tests.support.operator_helpers import condition, create, manifest
from tests.support.redis_server import RedisServer
from tests.support.reliability import producer, publish, report, runs, wait_all_ran

OUTAGE = 60.0
QUEUE = "jobs"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[RedisServer]:
    (tmp_path / "broker").mkdir()
    server = RedisServer(workdir=tmp_path / "broker", appendonly="yes").start()
    yield server
    if server.proc is not None:
        os.kill(server.proc.pid, signal.SIGCONT)
    server.stop()


def replicas(kube: Api, ns: str, name: str) -> int | None:
    deployment = kube.read(DEPLOYMENTS, ns, f"{name}-worker")
    return None if deployment is None else deployment["spec"].get("replicas")


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_a_minute_without_redis(
    kube: Api,
    ns: str,
    start_operator: Callable[..., Any],
    operator_env: dict[str, str],
    broker: RedisServer,
    recorder_server: RedisServer,
    recorder: redis.Redis,
    counting_tasks: Path,
    tmp_path: Path,
) -> None:
    operator_env["QUEUEWORKER_REDIS_URL"] = broker.url
    env = {
        "QW_RECORDER_URL": recorder_server.url,
        "QUEUEWORKER_VISIBILITY_TIMEOUT": "20",
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
    memo = kopf.Memo()
    assert broker.proc is not None
    try:
        worker.start()
        await asyncio.to_thread(worker.wait_ready, 60)
        published = publish(producer(broker.url), (f"before-{i:03d}" for i in range(400)), QUEUE, seconds=0.1)
        async with start_operator(memo=memo):
            create(
                kube,
                manifest(
                    "jobs",
                    ns,
                    concurrency=2,
                    autoscaling={
                        "mode": "builtin",
                        "minReplicas": 1,
                        "maxReplicas": 4,
                        "targetWaitSeconds": 5,
                        "scaleDownDelaySeconds": 5,
                    },
                ),
            )
            await eventually(lambda: replicas(kube, ns, "jobs") == 4, timeout=60)
            await eventually(lambda: len(runs(recorder)) >= 20, timeout=60)
            held = replicas(kube, ns, "jobs")

            os.kill(broker.proc.pid, signal.SIGSTOP)
            frozen_at = time.monotonic()
            ran_at_freeze = len(runs(recorder))
            seen: set[int | None] = set()
            while time.monotonic() - frozen_at < OUTAGE:
                seen.add(replicas(kube, ns, "jobs"))
                await asyncio.sleep(0.5)
            unreachable = condition(kube, ns, "jobs", "BrokerReachable")
            ran_in_outage = len(runs(recorder)) - ran_at_freeze
            os.kill(broker.proc.pid, signal.SIGCONT)
            back_at = time.monotonic()

            assert seen == {held}, f"replicas changed while Redis was unreachable: {seen}"
            assert unreachable.get("status") == "False", unreachable
            await eventually(lambda: len(runs(recorder)) > ran_at_freeze + ran_in_outage, timeout=60)
            resumed_in = time.monotonic() - back_at
            published += publish(producer(broker.url), (f"after-{i:03d}" for i in range(50)), QUEUE)
            all_ran = await asyncio.to_thread(wait_all_ran, published, recorder, 120)
            finished_in = time.monotonic() - back_at
            await eventually(
                lambda: condition(kube, ns, "jobs", "BrokerReachable").get("status") == "True",
                timeout=30,
            )
            # the autoscaler acts again once it has data: the drained queue scales down after the delay
            await eventually(lambda: (replicas(kube, ns, "jobs") or 0) < 4, timeout=60)
        result = report(
            f"Redis unreachable for {OUTAGE:.0f}s (replicas held at {held}; consumption resumed "
            f"{resumed_in:.1f}s and all done {finished_in:.1f}s after it returned)",
            published,
            recorder,
        )
        assert worker.running()
        assert all_ran and result.lost == 0, result
    finally:
        await asyncio.to_thread(worker.stop, 10)
