"""`qw probe liveness|readiness` against a real worker: passes while it consumes (even with every slot busy
on a long task), fails while its Redis is paused, passes again after, fails once the worker is gone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from queueworker import make_app
from queueworker.worker.health import PROBES

from tests.support.celery_worker import WORKERS, CeleryWorker, executions, write_task_module
from tests.support.redis_server import RedisServer
from tests.support.waiting import wait_for

FAST = {
    "QUEUEWORKER_LIVENESS_MAX_AGE": "4",
    "QUEUEWORKER_READINESS_MAX_AGE": "3",
    "QUEUEWORKER_BROKER_SOCKET_TIMEOUT": "2",
}


def probe(kind: str, worker: CeleryWorker) -> tuple[int, str]:
    env = {**os.environ, "PYTHONPATH": str(WORKERS), "QUEUEWORKER_STATE_DIR": str(worker.state_dir)}
    done = subprocess.run(
        [sys.executable, "-m", "queueworker.cli", "probe", kind],
        env=env,
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    return done.returncode, done.stdout.strip()


@pytest.fixture
def pausable_redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    if server.proc is not None:
        os.kill(server.proc.pid, signal.SIGCONT)
    server.stop(kill=True)


def test_probes_follow_broker_contact_not_task_length(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, pausable_redis: RedisServer
) -> None:
    write_task_module(tmp_path)
    url = pausable_redis.url
    client = pausable_redis.client()
    monkeypatch.setenv("QUEUEWORKER_BROKER_URL", url)
    app = make_app("probe-producer")
    worker = CeleryWorker(
        "qwtasks",
        ["pq"],
        broker_url=url,
        pythonpath=[tmp_path],
        concurrency=1,
        heartbeat_interval=0.5,
        env=FAST,
    )
    code, line = probe("liveness", worker)
    assert code == 1 and "no health file" in line
    with worker:
        worker.wait_ready()
        wait_for(lambda: probe("readiness", worker)[0] == 0, 10, message="readiness to pass")
        code, line = probe("liveness", worker)
        assert code == 0 and line.startswith("liveness ok: broker contact"), line
        # every slot busy on a task longer than the liveness bound: still alive
        app.send_task("qwtasks.record", args=["long", 6.0], queue="pq")
        wait_for(lambda: client.llen("test:started") == 1, 10, message="long task start")
        time.sleep(5.0)
        code, line = probe("liveness", worker)
        assert code == 0, line
        wait_for(lambda: executions(client) == ["long"], 10, message="long task to finish")

        os.kill(pausable_redis.proc.pid, signal.SIGSTOP)  # type: ignore[union-attr]
        try:
            wait_for(
                lambda: probe("liveness", worker)[0] == 1,
                30,
                interval=0.5,
                message="liveness to fail while Redis is paused",
            )
            code, line = probe("liveness", worker)
            # the heartbeat cannot reach Redis; the consumer loop may be stuck on it too
            assert code == 1 and ("no broker contact" in line or "consumer loop stalled" in line), line
            assert probe("readiness", worker)[0] == 1
        finally:
            os.kill(pausable_redis.proc.pid, signal.SIGCONT)  # type: ignore[union-attr]
        wait_for(
            lambda: probe("liveness", worker)[0] == 0,
            30,
            interval=0.5,
            message="liveness to pass again after Redis is back",
        )
        wait_for(lambda: probe("readiness", worker)[0] == 0, 30, interval=0.5, message="readiness again")
        app.send_task("qwtasks.record", args=["after"], queue="pq")
        wait_for(lambda: executions(client) == ["long", "after"], 30, message="consuming again")
        worker.kill()
    code, line = probe("liveness", worker)
    assert code == 1 and "not running" in line


def test_worker_reconnects_after_redis_restart(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Redis killed and started again on the same port: the worker notices, reconnects and consumes."""
    write_task_module(tmp_path)
    server = RedisServer().start()
    try:
        url = server.url
        monkeypatch.setenv("QUEUEWORKER_BROKER_URL", url)
        app = make_app("reconnect-producer")
        with CeleryWorker(
            "qwtasks", ["rq"], broker_url=url, pythonpath=[tmp_path], heartbeat_interval=0.5, env=FAST
        ) as worker:
            worker.wait_ready()
            app.send_task("qwtasks.record", args=["before"], queue="rq")
            wait_for(lambda: executions(server.client()) == ["before"], 20, message="task before restart")
            server.stop(kill=True)
            wait_for(
                lambda: probe("liveness", worker)[0] == 1,
                30,
                interval=0.5,
                message="liveness to fail while Redis is down",
            )
            server = RedisServer(port=server.port).start()
            worker.wait_ready(timeout=60)  # heartbeats again: the worker is back on the new server
            wait_for(lambda: probe("liveness", worker)[0] == 0, 30, interval=0.5, message="liveness back")
            app.send_task("qwtasks.record", args=["after"], queue="rq")
            wait_for(lambda: executions(server.client()) == ["after"], 30, message="task after restart")
            assert worker.running()
    finally:
        server.stop(kill=True)


def write_state(path: Path, **fields: object) -> Path:
    now = time.time()
    data = {
        "pid": os.getpid(),
        "hostname": "w@test",
        "started": now - 100,
        "ready": True,
        "broker_ok": now,
        "loop_tick": now,
        "liveness_max_age": 60.0,
        "readiness_max_age": 16.0,
        **fields,
    }
    path.write_text(json.dumps(data))
    return path


AGO = "ago:"  # a field value "ago:N" means N seconds before the test runs


@pytest.mark.parametrize(
    ("fields", "kind", "ok", "reason"),
    [
        ({}, "liveness", True, "broker contact"),
        ({}, "readiness", True, "ready"),
        ({"loop_tick": "ago:120"}, "liveness", False, "consumer loop stalled"),
        ({"broker_ok": "ago:120"}, "liveness", False, "no broker contact for"),
        ({"broker_ok": "ago:30"}, "liveness", True, "broker contact"),
        ({"broker_ok": "ago:30"}, "readiness", False, "no broker contact for"),
        ({"ready": False}, "readiness", False, "not ready"),
        ({"broker_ok": None, "started": "ago:5"}, "liveness", True, "starting"),
        ({"broker_ok": None, "started": "ago:500"}, "liveness", False, "since start"),
        ({"pid": 2**22 + 7}, "liveness", False, "not running"),
    ],
)
def test_probe_decisions(tmp_path: Path, fields: dict[str, object], kind: str, ok: bool, reason: str) -> None:
    now = time.time()
    fields = {
        k: now - float(v[len(AGO) :]) if isinstance(v, str) and v.startswith(AGO) else v
        for k, v in fields.items()
    }
    path = write_state(tmp_path / "worker.json", **fields)
    result = PROBES[kind](path)
    assert result.ok is ok and reason in result.reason, result
