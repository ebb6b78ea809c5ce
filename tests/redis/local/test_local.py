"""Local mode end to end, as a new user runs it: their own task module and manifests in a fresh directory,
`qw up` on the embedded Redis with real `celery worker` processes, `qw enqueue` and `qw status` from another
process, then Ctrl-C or SIGKILL — and nothing of the run may be left on the machine."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.local_mode import Project, kill_leftovers, live_in_groups, manifest
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    p = Project(tmp_path)
    yield p
    # Only after a failure (the tests assert there is nothing left): stop everything of the run.
    if p.proc is not None and p.proc.poll() is None:
        p.signal_up(signal.SIGINT)
        try:
            p.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            kill_leftovers({p.proc.pid})
    kill_leftovers({pgid for pgid, _ in p.processes().values()})


def assert_nothing_left(project: Project, pgids: set[int], timeout: float = 40) -> None:
    def gone() -> bool:
        return not project.processes() and not live_in_groups(pgids)

    try:
        wait_for(gone, timeout, 0.2, "every process of the run to exit")
    except TimeoutError:
        left = {**project.processes(), **live_in_groups(pgids)}
        raise AssertionError(f"processes left behind: {left}\n{project.output()[-3000:]}") from None


def groups_of_run(project: Project) -> set[int]:
    assert project.proc is not None
    project.status_url()  # learn the embedded Redis's process name
    groups = {pgid for pgid, _ in project.processes().values()}
    return groups | {project.proc.pid}


def test_burst_scales_up_completes_and_scales_down_then_ctrl_c_leaves_nothing(project: Project) -> None:
    name = project.name("burst")
    project.write(
        manifest(
            name,
            "lt-burst",
            routes=("ltasks.*",),
            grace=5,
            autoscaling={
                "mode": "builtin",
                "minReplicas": 1,
                "maxReplicas": 4,
                "targetWaitSeconds": 1,
                "scaleDownDelaySeconds": 3,
            },
        )
    )
    proc = project.up()
    wait_for(lambda: (r := project.row("burst")) and r["running"] == 1, 60, 0.3, "the minimum worker")

    sent = project.qw("enqueue", "ltasks.work", "0.05", "--count", "300")
    assert sent.returncode == 0, sent.stderr
    assert "published 300 x ltasks.work(0.05) to queue lt-burst" in sent.stdout
    assert "password" not in sent.stdout

    peak = 0
    done = 0

    def finished() -> bool:
        nonlocal peak, done
        row = project.row("burst")
        if row:
            peak = max(peak, row["running"] or 0)
        url = project.status_url()
        done = redis.Redis.from_url(url).scard("lt:done")
        return done == 300

    wait_for(finished, 120, 0.3, "all 300 tasks to complete")
    assert peak > 1, f"workers never rose above the minimum (peak {peak})\n{project.output()[-2000:]}"

    row = wait_for(
        lambda: (
            (r := project.row("burst"))
            and r["desired"] == 1
            and r["running"] == 1
            and not r["stopping"]
            and r
        ),
        90,
        0.3,
        "the scale-down back to the minimum",
    )
    assert isinstance(row, dict)
    assert row["last_scale"]["to"] == 1 and row["last_scale"]["from_replicas"] > 1
    assert row["backlog"] == 0

    table = project.qw("status")
    assert table.returncode == 0 and name in table.stdout and "last scale decision" in table.stdout

    groups = groups_of_run(project)
    project.signal_up(signal.SIGINT)
    assert proc.wait(timeout=60) == 0, project.output()[-3000:]
    assert "all processes stopped" in project.output()
    assert_nothing_left(project, groups)


def test_queued_tasks_survive_restart_and_sigkill_leaves_nothing_crash_restarts(project: Project) -> None:
    held, busy = project.name("held"), project.name("busy")
    project.write(
        manifest(held, "lt-held", routes=("ltasks.work",), replicas=0, autoscaling={"mode": "off"}),
        manifest(busy, "lt-other", replicas=1, autoscaling={"mode": "off"}),
    )
    project.up()
    wait_for(
        lambda: (r := project.row("busy")) and r["running"] == 1 and r["total_slots"],
        60,
        0.3,
        "the always-on worker",
    )
    sent = project.qw("enqueue", "ltasks.work", "--count", "25")
    assert sent.returncode == 0, sent.stderr
    wait_for(lambda: (r := project.row("held")) and r["backlog"] == 25, 20, 0.3, "25 queued tasks")

    # SIGKILL of `qw up` (its whole group): the watchdog and the parent-death signals clean up.
    groups = groups_of_run(project)
    assert len(groups) >= 4, groups  # qw up, watchdog, Redis, a worker: each its own group
    project.signal_up(signal.SIGKILL)
    assert_nothing_left(project, groups)

    # Restart on the same state directory: the embedded Redis reloads its append-only file.
    project.up()
    row = wait_for(lambda: (r := project.row("held")) and r, 60, 0.3, "qw up to come back")
    assert isinstance(row, dict) and row["backlog"] == 25

    # A worker that dies is restarted with backoff, and the view counts the restart.
    wait_for(lambda: (r := project.row("busy")) and r["running"] == 1, 60, 0.3, "the worker after restart")
    worker = [
        (pid, pgid) for pid, (pgid, cmd) in project.processes().items() if f"{busy}-1@" in cmd and pid == pgid
    ]
    assert len(worker) == 1, project.processes()
    kill_leftovers({worker[0][1]})
    row = wait_for(
        lambda: (r := project.row("busy")) and r["restarts"] >= 1 and r["running"] == 1 and r,
        60,
        0.3,
        "the crashed worker to be restarted",
    )
    assert "exited unexpectedly (killed by SIGKILL); restarting in" in project.output()

    groups = groups_of_run(project)
    project.signal_up(signal.SIGINT)
    assert project.proc is not None and project.proc.wait(timeout=60) == 0
    assert_nothing_left(project, groups)


def test_invalid_manifest_exits_2_with_field_errors_and_starts_nothing(project: Project) -> None:
    bad = manifest(
        project.name("bad"), "lt-bad", autoscaling={"mode": "builtin", "minReplicas": 5, "maxReplicas": 2}
    )
    bad["spec"]["concurrency"] = "lots"
    path = project.write(bad)
    result = project.qw("up", "-f", "qw/", "--exporter-port", "0", "--plain")
    assert result.returncode == 2
    assert (
        f"{path}: spec.concurrency:" in result.stderr
        or "qw/queueworkers.yaml: spec.concurrency:" in result.stderr
    )
    assert "spec.autoscaling" in result.stderr
    assert "Traceback" not in result.stderr
    assert "nothing started" in result.stderr
    assert not (project.root / ".qw").exists()
    assert not project.processes()


def test_enqueue_and_status_errors_name_the_argument(project: Project) -> None:
    project.write(manifest(project.name("x"), "lt-x", routes=("ltasks.work",), autoscaling={"mode": "off"}))
    result = project.qw("enqueue", "ltasks.work", "--kwargs", "[1, 2]", "-f", "qw/")
    assert result.returncode == 2 and "--kwargs: expected a JSON object" in result.stderr
    result = project.qw("enqueue", "other.task", "-f", "qw/")
    assert result.returncode == 2 and "TASK: no route matches 'other.task'" in result.stderr
    result = project.qw("enqueue", "ltasks.work", "--count", "0")
    assert result.returncode == 2 and "--count: must be >= 1" in result.stderr
    result = project.qw("status")
    assert result.returncode == 1 and "no `qw up`" in result.stderr and "Traceback" not in result.stderr


def test_demo_publishes_a_burst_and_exits_by_itself_after_the_scale_down(project: Project) -> None:
    """What `make run` does, on the user's own tasks: burst, drain, scale down, summary, exit 0."""
    project.write(
        manifest(
            project.name("demo"),
            "lt-demo",
            routes=("ltasks.work",),
            grace=5,
            autoscaling={
                "mode": "builtin",
                "minReplicas": 0,
                "maxReplicas": 3,
                "targetWaitSeconds": 1,
                "scaleDownDelaySeconds": 2,
            },
        )
    )
    proc = project.up("--demo", "--burst", "60:ltasks.work:[0.05]", "--duration", "150")
    assert proc.wait(timeout=180) == 0, project.output()[-3000:]
    out = project.output()
    assert "demo: published 60 x ltasks.work(0.05) to queue lt-demo" in out
    assert "scaling down (" in out, out[-3000:]
    assert '"published": 60, "completed": 60' in out
    peak = int(out.split('"peak_workers": {"' + project.name("demo") + '": ')[1].split("}")[0])
    assert peak > 0
    assert not project.processes()
