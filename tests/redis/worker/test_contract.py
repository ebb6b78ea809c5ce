"""The rules the operator and local mode share (queueworker.contract), tested once: the worker command
line and settings, the beat command line, the soft-shutdown budget, the targets hash and its upkeep and
the held records per worker (on a real Redis), and redaction; then that both sides' workers and beats
get exactly those (their wiring: what they add is their own)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import redis
from queueworker import contract
from queueworker.api.spec import Autoscaling, QueueWorker, QueueWorkerSpec, Schedule, Shutdown
from queueworker.broker import keys
from queueworker.builders.beat import beat_deployment
from queueworker.builders.worker import worker_deployment
from queueworker.local.commands import LocalContext, beat_command, worker_command
from queueworker.settings import Settings
from queueworker.worker.settings import PREFIX, WorkerSettings


def make_qw(name: str = "mail", namespace: str = "shop", **spec: object) -> QueueWorker:
    base: dict[str, object] = {"app": "shop.tasks:app", "queues": ("q1", "q2")}
    return QueueWorker(name=name, namespace=namespace, spec=QueueWorkerSpec(**{**base, **spec}))  # type: ignore[arg-type]


@pytest.mark.parametrize(("grace", "soft"), [(1, 0), (2, 1), (10, 9), (60, 54), (300, 270), (86400, 86370)])
def test_soft_shutdown_budget_leaves_a_margin_inside_the_grace_period(grace: int, soft: int) -> None:
    assert contract.soft_shutdown_seconds(grace) == soft


def test_worker_args_carry_the_spec() -> None:
    qw = make_qw(concurrency=3, pool="threads", prefetch_multiplier=2, max_tasks_per_child=50)
    args = contract.worker_args(qw, "mail@host", "warning")
    assert args[:5] == ["-A", "shop.tasks:app", "worker", "-Q", "q1,q2"]
    pairs = dict(zip(args[5::2], args[6::2], strict=False))
    assert {k: pairs[k] for k in ("--concurrency", "--pool", "--prefetch-multiplier", "--hostname",
                                  "--loglevel")} == {
        "--concurrency": "3", "--pool": "threads", "--prefetch-multiplier": "2", "--hostname": "mail@host",
        "--loglevel": "WARNING"}  # fmt: skip
    assert args[-2:] == ["--max-tasks-per-child", "50"]
    assert "--max-tasks-per-child" not in contract.worker_args(make_qw(), "h")


def test_worker_env_has_only_settings_a_worker_reads() -> None:
    env = contract.worker_env(make_qw(shutdown=Shutdown(600)), metrics_port=9809, routes_file="/r.json")
    assert env == {"QUEUEWORKER_METRICS_PORT": "9809", "QUEUEWORKER_ROUTES_FILE": "/r.json",
                   "QUEUEWORKER_SOFT_SHUTDOWN_TIMEOUT": "570"}  # fmt: skip
    read = {PREFIX + f.name.upper() for f in dataclasses.fields(WorkerSettings)}  # make_app reads these
    for name in env:
        assert name in read, f"{name} is written but nothing reads it"


def test_targets_first_queueworker_by_namespace_and_name_wins_a_shared_queue() -> None:
    a = make_qw("a", "shop", queues=("shared", "only-a"), autoscaling=Autoscaling(target_wait_seconds=5))
    b = make_qw("b", "shop", queues=("shared",), autoscaling=Autoscaling(target_wait_seconds=60))
    for order in ([a, b], [b, a]):
        got = {q: json.loads(v) for q, v in contract.targets(order).items()}
        assert got == {"shared": {"targetWaitSeconds": 5.0, "queueworker": "shop/a"},
                       "only-a": {"targetWaitSeconds": 5.0, "queueworker": "shop/a"}}  # fmt: skip


def test_held_by_worker_counts_the_held_records_of_the_queues_and_their_priority_lists(
    redis_client: redis.Redis,
) -> None:
    prio = f"q2{keys.PRIORITY_SEP}{keys.PRIORITY_STEPS[-1]}"
    records = {
        "t1": "mail-1@pod-a\nq1",
        "t2": "mail-1@pod-a\nq2",  # the same worker on its second queue: 2 + 1 messages held
        "t3": f"mail-1@pod-a\n{prio}",
        "t4": "mail-2@pod-b\nq1",
        "t5": "other@pod-c\nelsewhere",  # another QueueWorker's queue
        "t6": f"other@pod-c\nq1{keys.PRIORITY_SEP}77",  # not one of the priority lists
        "t7": "no separator",
        "t8": "\nq1",  # no holder
    }
    redis_client.hset(keys.HELD_HASH, mapping=records)  # type: ignore[arg-type]
    redis_client.hset(keys.HELD_HASH, "t9", b"\xff\xfe\nq1")  # not text
    assert contract.held_by_worker(redis_client, ("q1", "q2")) == {"mail-1@pod-a": 3, "mail-2@pod-b": 1}
    assert contract.held_by_worker(redis_client, ("elsewhere",)) == {"other@pod-c": 1}
    assert contract.held_by_worker(redis_client, ()) == {}
    redis_client.delete(keys.HELD_HASH)
    assert contract.held_by_worker(redis_client, ("q1",)) == {}


def test_sync_targets_writes_what_changed_and_removes_only_its_own_stale_entries(
    redis_client: redis.Redis,
) -> None:
    def read() -> dict[str, dict[str, object]]:
        fields = redis_client.hgetall(keys.TARGETS_HASH)
        return {k.decode(): json.loads(v) for k, v in fields.items() if k != b"junk"}

    mail = make_qw("mail", "shop", queues=("q1", "q2"), autoscaling=Autoscaling(target_wait_seconds=5))
    redis_client.hset(
        keys.TARGETS_HASH,
        mapping={
            "old": json.dumps({"targetWaitSeconds": 1, "queueworker": "shop/gone"}),  # stale, ours
            "theirs": json.dumps({"targetWaitSeconds": 1, "queueworker": "other/qw"}),  # another writer's
            "q2": json.dumps({"targetWaitSeconds": 99, "queueworker": "shop/mail"}),  # outdated
            "junk": "not json",
        },
    )
    contract.sync_targets(redis_client, [mail], {"shop"})
    mine = {"targetWaitSeconds": 5.0, "queueworker": "shop/mail"}
    assert read() == {"q1": mine, "q2": mine, "theirs": {"targetWaitSeconds": 1, "queueworker": "other/qw"}}
    assert redis_client.hget(keys.TARGETS_HASH, "junk") == b"not json"
    contract.sync_targets(redis_client, [], {"shop"})  # the last QueueWorker of the namespace is gone
    assert set(read()) == {"theirs"} and redis_client.hexists(keys.TARGETS_HASH, "junk")


@pytest.mark.parametrize(
    ("text", "secret", "want"),
    [
        ("redis://:pw@redis:6379/0", None, "redis://:***@redis:6379/0"),
        ("rediss://user:pw@host/2", None, "rediss://user:***@host/2"),
        ("redis://localhost:6379/0", None, "redis://localhost:6379/0"),
        ("redis://user@host/0", None, "redis://user@host/0"),
        (
            "Error connecting to redis://:s3cr3t@r:6379/0: auth s3cr3t failed",
            "redis://:s3cr3t@r:6379/0",
            "Error connecting to redis://:***@r:6379/0: auth *** failed",
        ),
        ("redis://:p@ss@host/0", None, "redis://:***@host/0"),  # an unencoded @ in the password
        ("redis://[::1", None, "redis://[::1"),  # unparsable: left alone, no exception
    ],
)
def test_redact(text: str, secret: str | None, want: str) -> None:
    assert contract.redact(text, secret) == want


def test_operator_and_local_workers_get_the_shared_command_and_settings(tmp_path: Path) -> None:
    """Each side's wiring: the pod and the local process run contract.worker_args with their own
    hostname, carry contract.worker_env with their own port and routes file, and let the spec's env win."""
    mine = ({"name": "QUEUEWORKER_ROUTES_FILE", "value": "/mine.json"}, {"name": "A", "value": "1"})
    qw = make_qw(env=mine)
    deployment = worker_deployment(qw, Settings(worker_metrics_port=9809))
    pod = deployment["spec"]["template"]["spec"]["containers"][0]
    assert pod["command"] == ["celery"] and pod["args"] == contract.worker_args(qw, "mail@%h")
    pod_env = {e["name"]: e.get("value") for e in pod["env"]}
    ctx = LocalContext(redis_url="redis://127.0.0.1:1/0", routes_file=tmp_path / "routes.json",
                       workdir=tmp_path, cwd=tmp_path)  # fmt: skip
    argv, local_env = worker_command(qw, 2, ctx, manifest_dir=None, metrics_port=4242, environ={})
    assert argv[1:4] == ["-m", "celery", "--quiet"]
    assert argv[4:] == contract.worker_args(qw, argv[argv.index("--hostname") + 1], "warning")
    for env, port in ((pod_env, 9809), (local_env, 4242)):
        shared = contract.worker_env(qw, metrics_port=port, routes_file="/mine.json")
        assert {name: env[name] for name in shared} == shared
        assert env["A"] == "1"


def test_operator_and_local_beat_run_the_shared_beat_arguments(tmp_path: Path) -> None:
    qw = make_qw(schedules=(Schedule(name="s", task="t.a", cron="0 7 * * *", every=None, queue="q1"),))
    deployment = beat_deployment([qw], Settings())
    assert deployment is not None
    pod = deployment["spec"]["template"]["spec"]["containers"][0]
    assert pod["command"] == ["celery"] and pod["args"] == contract.beat_args()
    ctx = LocalContext(redis_url="redis://127.0.0.1:1/0", routes_file=tmp_path / "routes.json",
                       workdir=tmp_path, cwd=tmp_path, log_level="info")  # fmt: skip
    argv, _ = beat_command(ctx, {})
    assert argv[4 : 4 + len(contract.beat_args())] == contract.beat_args("info")


def test_local_workers_keep_their_own_port_and_state_dir_over_the_spec_env(tmp_path: Path) -> None:
    """Several local workers share one machine: a spec env entry cannot give them one port or directory."""
    qw = make_qw(env=({"name": "QUEUEWORKER_METRICS_PORT", "value": "9809"},
                      {"name": "QUEUEWORKER_STATE_DIR", "value": "/tmp/one"}))  # fmt: skip
    ctx = LocalContext(redis_url="redis://127.0.0.1:1/0", routes_file=tmp_path / "routes.json",
                       workdir=tmp_path, cwd=tmp_path)  # fmt: skip
    envs = [
        worker_command(qw, i, ctx, manifest_dir=None, metrics_port=4000 + i, environ={})[1] for i in (1, 2)
    ]
    assert [e["QUEUEWORKER_METRICS_PORT"] for e in envs] == ["4001", "4002"]
    assert envs[0]["QUEUEWORKER_STATE_DIR"] != envs[1]["QUEUEWORKER_STATE_DIR"]
