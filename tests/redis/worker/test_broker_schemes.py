"""The worker runtime behaves the same on every broker scheme: a real `celery worker` of a make_app app on a
TLS-only Redis (rediss://, the server verified against a test CA, a client certificate) and on a
Sentinel-managed primary (sentinel://, TLS, separate passwords for data and sentinels) fetches atomically
(held record + lease), writes heartbeats, serves metrics and drops a malformed message without stopping."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from queueworker import make_app
from queueworker.broker.client import connect
from queueworker.broker.keys import HELD_HASH, alive_key
from queueworker.worker.brokerconf import SENTINEL_TRANSPORT, TRANSPORT

from tests.support.celery_worker import CeleryWorker, executions, scrape, write_task_module
from tests.support.redis_server import RedisServer, free_port
from tests.support.sentinel import SentinelCluster
from tests.support.tls import TlsFiles, make_tls
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow
QUEUE = "schemes"


@pytest.fixture(scope="module")
def tls() -> TlsFiles:
    return make_tls()


@pytest.fixture
def tls_redis(tls: TlsFiles) -> Iterator[tuple[str, dict[str, str]]]:
    with RedisServer(password="data-secret", tls=tls) as server:
        yield f"rediss://:data-secret@127.0.0.1:{server.port}/0?{tls.query(client_cert=True)}", {}


@pytest.fixture
def sentinel_redis(tls: TlsFiles) -> Iterator[tuple[str, dict[str, str]]]:
    # No failover is wanted here: a primary stalled by a slow disk on a loaded machine must not be voted down.
    with SentinelCluster(tls=tls, down_after_ms=60000) as cluster:
        yield cluster.url, cluster.env


@pytest.mark.parametrize("scheme", ["tls_redis", "sentinel_redis"])
def test_the_runtime_is_the_same_on_every_scheme(
    scheme: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, env = request.getfixturevalue(scheme)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("QUEUEWORKER_BROKER_URL", url)
    write_task_module(tmp_path)
    app = make_app("schemes-producer")
    expected = SENTINEL_TRANSPORT if url.startswith("sentinel") else TRANSPORT
    assert app.conf.broker_transport == expected
    client = connect(url)
    port = free_port()
    with CeleryWorker(
        "qwtasks", [QUEUE], broker_url=url, env=env, pythonpath=[tmp_path], metrics_port=port, concurrency=1
    ) as worker:
        worker.wait_ready(timeout=60)  # heartbeats written through this scheme
        assert client.exists(alive_key(worker.hostname)), "the fetch lease is written"
        app.send_task("qwtasks.record", args=["slow", 2.0], queue=QUEUE)
        held = wait_for(lambda: client.hgetall(HELD_HASH), 30, message="the running task's held record")
        assert isinstance(held, dict)
        assert all(v.decode().startswith(worker.hostname + "\n") for v in held.values())
        client.lpush(QUEUE, b"{not json")
        for i in range(3):
            app.send_task("qwtasks.record", args=[f"after{i}"], queue=QUEUE)
        wait_for(lambda: len(executions(client)) >= 4, 60, message="every task to run")
        assert sorted(executions(client)) == ["after0", "after1", "after2", "slow"]
        assert client.llen(f"queueworker:malformed:{QUEUE}") == 1
        assert not client.hgetall(HELD_HASH), "acks cleared the held records"
        rejected = f'celery_task_rejected_total{{name="(malformed)",queue_name="{QUEUE}"}}'
        wait_for(lambda: scrape(port).get(rejected) == 1.0, 20, message="the malformed message counted")
        assert worker.running()
        assert "Unrecoverable error" not in worker.log()


def test_a_sentinel_publish_waits_for_a_replica_and_says_so_when_none_confirms(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Acknowledged means durable: with the replica gone, a publish fails after the documented bound, with an
    error naming the replica count and the timeout; with the replica back it is acknowledged again."""
    with SentinelCluster(down_after_ms=60000) as cluster:
        for key, value in cluster.env.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("QUEUEWORKER_BROKER_URL", cluster.url)
        monkeypatch.setenv("QUEUEWORKER_PUBLISH_RETRY_SECONDS", "2")
        monkeypatch.setenv("QUEUEWORKER_PUBLISH_WAIT_TIMEOUT", "0.3")
        app = make_app("durable-producer")
        app.send_task("qwtasks.record", args=["first"], queue="durable")
        replica = cluster.replicas()[0]
        assert replica.client().llen("durable") == 1, "acknowledged once the replica holds it"
        replica.stop(kill=True)
        cluster.wait_replicas(cluster.primary(), 0)
        with pytest.raises(
            Exception, match=r"0 of 1 required replica\(s\) confirmed it within 0\.3s"
        ) as info:
            app.send_task("qwtasks.record", args=["lonely"], queue="durable")
        assert "QUEUEWORKER_PUBLISH_RETRY_SECONDS=2" in str(info.value)
        assert cluster.password not in str(info.value)
        with cluster.syncing_at_once(cluster.primary()):
            replica.start()
            cluster.wait_replicas(cluster.primary(), 1)
        app.send_task("qwtasks.record", args=["again"], queue="durable")
        assert replica.client().llen("durable") >= 2


def test_a_standalone_redis_without_replicas_publishes_without_waiting(
    monkeypatch: pytest.MonkeyPatch, redis_url: str, redis_client: redis.Redis
) -> None:
    monkeypatch.setenv("QUEUEWORKER_BROKER_URL", redis_url)
    monkeypatch.setenv("QUEUEWORKER_PUBLISH_WAIT_TIMEOUT", "5")
    redis_client.config_resetstat()
    app = make_app("standalone-producer")
    for i in range(20):
        app.send_task("qwtasks.record", args=[f"s{i}"], queue="standalone")
    assert redis_client.llen("standalone") == 20
    assert "cmdstat_wait" not in redis_client.info("commandstats"), "no WAIT without replicas"


def test_a_primary_refusing_writes_during_a_failover_is_a_lost_connection(
    tls: TlsFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A primary that has too few replicas for `min-replicas-to-write` (the chart's sentinel mode sets 1)
    answers NOREPLICAS for a moment after a failover. The platform's clients take it for a lost connection
    (which Celery, kombu and the publish retry recover from), never for an error that stops a worker."""
    with SentinelCluster(tls=tls, down_after_ms=60000) as cluster:
        for key, value in cluster.env.items():
            monkeypatch.setenv(key, value)
        primary = cluster.primary()
        primary.client().config_set("min-replicas-to-write", 1)
        for replica in cluster.replicas():
            replica.stop(kill=True)
        cluster.wait_replicas(primary, 0)
        client = connect(cluster.url)
        with pytest.raises(redis.exceptions.ConnectionError, match="NOREPLICAS") as info:
            client.set("refused", "1")
        assert cluster.password not in str(info.value)
        assert client.get("refused") is None, "reads still work"
        monkeypatch.setenv("QUEUEWORKER_BROKER_URL", cluster.url)
        app = make_app("refused-producer")
        with app.connection_for_write() as conn:
            channel_client = conn.default_channel.client
            with pytest.raises(redis.exceptions.ConnectionError, match="NOREPLICAS"):
                channel_client.lpush("refused", "1")
