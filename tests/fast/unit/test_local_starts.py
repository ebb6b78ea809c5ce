"""Local mode learns how long its workers take to start: from a worker process's spawn to the readiness its
state file reports (the file the worker runtime writes and `qw probe readiness` reads), once per process."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, cast

import redis
from queueworker.api.spec import parse_manifest
from queueworker.local.commands import LocalContext
from queueworker.local.control import Controller, Managed, policy_config
from queueworker.local.supervisor import Child, Supervisor
from queueworker.local.watchdog import Watchdog
from queueworker.worker.health import FILE_NAME


def test_a_worker_start_is_measured_from_spawn_to_ready_once(tmp_path: Path) -> None:
    qw = parse_manifest(
        {
            "apiVersion": "queueworker.dev/v1alpha1",
            "kind": "QueueWorker",
            "metadata": {"name": "starts"},
            "spec": {"app": "tasks:app", "queues": ["starts"]},
        }
    )
    managed = Managed(qw, None, policy_config(qw, None))
    now = [1000.0]
    lines: list[tuple[str, str]] = []
    watchdog = Watchdog(tmp_path, dict(os.environ))
    supervisor = Supervisor(watchdog, lambda name, line: lines.append((name, line)), clock=lambda: now[0])
    controller = Controller([managed], supervisor, cast(LocalContext, None), redis.Redis(), {})
    folder = tmp_path / "starts-1"
    folder.mkdir()
    try:
        child = supervisor.start(
            Child(
                name="starts-1",
                argv=[sys.executable, "-c", "import time; time.sleep(60)"],
                env={**os.environ, "QUEUEWORKER_STATE_DIR": str(folder)},
                cwd=tmp_path,
                grace=1.0,
                owner="starts",
                index=1,
                hostname="starts-1@here",
            )
        )
        state: dict[str, Any] = {"pid": child.pid, "hostname": "starts-1@here", "ready": False}
        # The state file an earlier process left in the same folder says nothing about this one.
        (folder / FILE_NAME).write_text(json.dumps({**state, "pid": 1, "ready": True}))
        now[0] += 1.0
        assert controller.measure_starts(managed) is None
        (folder / FILE_NAME).write_text(json.dumps(state))
        now[0] += 2.0
        assert controller.measure_starts(managed) is None  # booting: not measured yet
        now[0] += 4.5
        (folder / FILE_NAME).write_text(json.dumps({**state, "ready": True}))
        assert controller.measure_starts(managed) == 7.5
        now[0] += 100.0
        assert controller.measure_starts(managed) == 7.5  # each process once
    finally:
        supervisor.kill_all()
        watchdog.close()
