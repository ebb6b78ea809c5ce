"""`qw up --broker sentinel`: the embedded server runs a primary, a replica and three sentinels; the workers
consume through the sentinels, and after the primary's process is killed (as a user trying a failover
would) a make_app producer's tasks still run, with `qw up` and its worker still up."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from queueworker import make_app
from queueworker.broker.client import connect

from tests.support.local_mode import Project, kill_leftovers, manifest
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    p = Project(tmp_path)
    yield p
    if p.proc is not None and p.proc.poll() is None:
        p.signal_up(signal.SIGINT)
        try:
            p.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            kill_leftovers({p.proc.pid})
    kill_leftovers({pgid for pgid, _ in p.processes().values()})


def sentinel_url(state: Path) -> tuple[str, dict[str, str]]:
    """The broker URL and variables `qw up --broker sentinel` gives its children, read from its state."""
    ports = [
        re.search(r"^port (\d+)$", (state / f"sentinel{i}" / "sentinel.conf").read_text(), re.M).group(1)  # type: ignore[union-attr]
        for i in range(3)
    ]
    password = (state / "password").read_text().strip()
    hosts = ";".join(
        f"sentinel://{f':{password}@' if i == 0 else ''}127.0.0.1:{p}" for i, p in enumerate(ports)
    )
    env = {
        "QUEUEWORKER_SENTINEL_MASTER": "qw",
        "QUEUEWORKER_SENTINEL_PASSWORD": (state / "sentinel-password").read_text().strip(),
    }
    return f"{hosts}/0", env


def test_up_with_a_sentinel_broker_survives_killing_the_primary(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = project.name("sent")
    project.write(manifest(name, "lt-sentinel", autoscaling={"mode": "off"}, replicas=1))
    proc = project.up("--broker", "sentinel")
    state = project.root / ".qw" / "redis"
    wait_for(lambda: (r := project.row("sent")) and r["running"] == 1, 90, 0.5, "the worker")
    url, env = sentinel_url(state)
    for key, value in {**env, "QUEUEWORKER_BROKER_URL": url}.items():
        monkeypatch.setenv(key, value)
    app = make_app("local-sentinel-producer")
    client = connect(url)
    for _ in range(5):
        app.send_task("ltasks.work", args=[0.01], queue="lt-sentinel")
    wait_for(lambda: client.scard("lt:done") == 5, 60, 0.3, "the first tasks to run")

    primary = json.loads((state / "endpoint.json").read_text())["pid"]
    os.kill(primary, signal.SIGKILL)
    for _ in range(5):  # published through whichever primary the sentinels name (retried meanwhile)
        app.send_task("ltasks.work", args=[0.01], queue="lt-sentinel")
    wait_for(lambda: client.scard("lt:done") == 10, 120, 0.5, "the tasks published after the kill to run")
    assert proc.poll() is None, project.output()[-3000:]
    assert "Unrecoverable error" not in project.output()
    project.signal_up(signal.SIGINT)
    assert proc.wait(timeout=90) in (0, 1), project.output()[-3000:]
