"""No broker password in any log line of a worker or a beat, including while Redis is unreachable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from queueworker import make_app

from tests.support.celery_worker import REPO, WORKERS, CeleryWorker, executions, write_task_module
from tests.support.redis_server import RedisServer
from tests.support.waiting import wait_for

PASSWORD = "s3cr3t-Broker-pw"


def test_password_never_logged(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    write_task_module(tmp_path / "mod")
    server = RedisServer(password=PASSWORD).start()
    beat: subprocess.Popen[bytes] | None = None
    beat_log = tmp_path / "beat.log"
    try:
        url = server.url
        assert PASSWORD in url
        client = server.client()
        monkeypatch.setenv("QUEUEWORKER_BROKER_URL", url)
        app = make_app("secret-producer")
        env = {"QUEUEWORKER_BROKER_SOCKET_TIMEOUT": "1"}
        with CeleryWorker(
            "qwtasks",
            ["sq"],
            broker_url=url,
            pythonpath=[tmp_path / "mod"],
            env=env,
            heartbeat_interval=0.5,
            loglevel="DEBUG",
        ) as worker:
            worker.wait_ready()
            with beat_log.open("wb") as out:
                beat = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "celery",
                        "-A",
                        "queueworker.beat.app",
                        "beat",
                        "--loglevel",
                        "DEBUG",
                        "-s",
                        str(tmp_path / "unused"),
                    ],
                    env={
                        **os.environ,
                        "PYTHONPATH": os.pathsep.join([str(REPO), str(WORKERS)]),
                        "QUEUEWORKER_BROKER_URL": url,
                    },
                    cwd=tmp_path,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            app.send_task("qwtasks.record", args=["one"], queue="sq")
            wait_for(lambda: executions(client) == ["one"], 20, message="first task")
            wait_for(lambda: "Acquired lock" in beat_log.read_text(), 20, message="beat running")
            os.kill(server.proc.pid, signal.SIGSTOP)  # type: ignore[union-attr]
            time.sleep(4.0)  # connection errors get logged meanwhile
            os.kill(server.proc.pid, signal.SIGCONT)  # type: ignore[union-attr]
            app.send_task("qwtasks.record", args=["two"], queue="sq")
            wait_for(lambda: executions(client) == ["one", "two"], 30, message="second task")
            worker_log = worker.log()
        assert "heartbeat not written" in worker_log  # the outage was seen and logged...
        assert PASSWORD not in worker_log  # ...without the password
        assert PASSWORD not in beat_log.read_text()
    finally:
        if beat is not None:
            beat.terminate()
            beat.wait(timeout=10)
        if server.proc is not None:
            os.kill(server.proc.pid, signal.SIGCONT)
        server.stop(kill=True)
