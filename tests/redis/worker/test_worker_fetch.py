"""The atomic fetch (worker/fetch.py) on a real Redis, through kombu channels of the worker's transport:
the message is recorded as held in the operation that pops it, acks and restores check the holder, a dead
worker's messages go back exactly once when several workers recover at once, a fetch whose reply was lost is
put back, priority lists keep their order, and the probe counts held messages as reserved."""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from kombu import Connection, Consumer, Queue
from queueworker.broker.keys import HELD_HASH, alive_key
from queueworker.broker.stats import queue_stats
from queueworker.worker import fetch, fetch_lua, poolfds, transport

from tests.support.reliability import producer

QUEUE = "jobs"


@pytest.fixture
def steady_lease() -> Iterator[None]:
    """This process may recover others' messages (its lease has been written for a whole TTL)."""
    saved = fetch.LEASE.contact_since
    fetch.LEASE.contact_since = time.monotonic() - 10 * fetch.LEASE.ttl
    yield
    fetch.LEASE.contact_since = saved


def channel_for(url: str, holder: str) -> tuple[Connection, Any]:
    connection = Connection(url, transport=transport.Transport)
    channel = connection.channel()
    channel.qw_holder = holder
    return connection, channel


def consume(channel: Any, connection: Connection, n: int, queue: str = QUEUE) -> list[Any]:
    got: list[Any] = []
    consumer = Consumer(channel, [Queue(queue)], callbacks=[lambda body, m: got.append(m)], accept=["json"])
    consumer.consume()
    deadline = time.monotonic() + 20
    while len(got) < n and time.monotonic() < deadline:
        with contextlib.suppress(TimeoutError):
            connection.drain_events(timeout=0.5)
    consumer.cancel()
    return got


def held(client: redis.Redis) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in client.hgetall(HELD_HASH).items()}


def test_fetch_records_the_message_as_held_in_the_same_operation_and_ack_clears_it(
    redis_url: str, redis_client: redis.Redis
) -> None:
    producer(redis_url).send_task("x.task", queue=QUEUE)
    connection, channel = channel_for(redis_url, "a@test")
    try:
        [message] = consume(channel, connection, 1)
        tag = message.delivery_tag
        assert held(redis_client) == {tag: f"a@test\n{QUEUE}"}
        stored = json.loads(redis_client.hget("unacked", tag))
        assert stored[0]["properties"]["delivery_tag"] == tag and stored[2] == QUEUE  # stock kombu's format
        assert redis_client.zscore("unacked_index", tag) is not None
        assert redis_client.exists(alive_key("a@test"))
        assert queue_stats(redis_client, [QUEUE])[QUEUE].reserved == 1, "held counts as reserved"
        message.ack()
        assert held(redis_client) == {} and redis_client.hlen("unacked") == 0
        assert redis_client.zcard("unacked_index") == 0
    finally:
        connection.release()


def test_priority_lists_are_fetched_in_stock_kombus_order(redis_url: str, redis_client: redis.Redis) -> None:
    app = producer(redis_url)
    for priority in (9, 0, 6, 3, 0):
        app.send_task("x.task", args=[priority], queue=QUEUE, priority=priority)
    stock = Connection(redis_url)
    connection, channel = channel_for(redis_url, "a@test")
    try:
        expected = [json.loads(m.body)[0] for m in consume(stock.channel(), stock, 5) if m.ack() is None]
        stock.release()
        for priority in (9, 0, 6, 3, 0):
            app.send_task("x.task", args=[priority], queue=QUEUE, priority=priority)
        ours = [json.loads(m.body)[0] for m in consume(channel, connection, 5)]
        assert ours == expected, (ours, expected)
    finally:
        connection.release()


def test_ack_of_a_message_recovered_and_held_by_another_worker_leaves_its_record(
    redis_url: str, redis_client: redis.Redis, steady_lease: None
) -> None:
    producer(redis_url).send_task("x.task", queue=QUEUE)
    conn_a, chan_a = channel_for(redis_url, "a@test")
    conn_b, chan_b = channel_for(redis_url, "b@test")
    try:
        [first] = consume(chan_a, conn_a, 1)
        redis_client.delete(alive_key("a@test"))  # a's lease expired: it is taken for dead
        redis_client.set(alive_key("b@test"), 1)
        assert chan_b.qos.sweep() == 1
        [again] = consume(chan_b, conn_b, 1)
        assert again.delivery_tag == first.delivery_tag and again.delivery_info["redelivered"]
        first.ack()  # a comes back and finishes: another worker holds the message now
        assert held(redis_client) == {again.delivery_tag: f"b@test\n{QUEUE}"}
        assert redis_client.hexists("unacked", again.delivery_tag)
        again.ack()
        assert held(redis_client) == {} and redis_client.hlen("unacked") == 0
    finally:
        conn_a.release()
        conn_b.release()


def test_a_dead_workers_messages_go_back_once_when_several_workers_recover_at_once(
    redis_url: str, redis_client: redis.Redis, steady_lease: None
) -> None:
    app = producer(redis_url)
    for i in range(30):
        app.send_task("x.task", args=[i], queue=QUEUE)
    keys = ["unacked", "unacked_index", HELD_HASH, alive_key("dead@test"), QUEUE]
    for _ in range(30):  # what a worker fetched before it was SIGKILLed
        fetch.run_script(redis_client, fetch_lua.FETCH, keys, ["dead@test", time.time(), 1])
    time.sleep(0.01)  # its lease (1 ms) has expired
    assert len(held(redis_client)) == 30 and redis_client.llen(QUEUE) == 0
    recoverers = [channel_for(redis_url, f"r{i}@test") for i in range(6)]
    for i in range(6):
        redis_client.set(alive_key(f"r{i}@test"), 1)
    barrier = threading.Barrier(6)

    def sweep(channel: Any) -> None:
        barrier.wait()
        channel.qos.sweep()

    threads = [threading.Thread(target=sweep, args=(ch,)) for _, ch in recoverers]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        back = [json.loads(raw) for raw in redis_client.lrange(QUEUE, 0, -1)]
        assert len(back) == 30, f"{len(back)} back in the queue"
        assert sorted(json.loads(base64.b64decode(m["body"]))[0][0] for m in back) == list(range(30))
        assert all(m["properties"]["delivery_info"]["redelivered"] for m in back)
        assert held(redis_client) == {} and redis_client.hlen("unacked") == 0
    finally:
        for connection, _ in recoverers:
            connection.release()


def test_a_fetch_whose_reply_was_lost_goes_back_to_the_head_of_its_queue(
    redis_url: str, redis_client: redis.Redis
) -> None:
    app = producer(redis_url)
    app.send_task("x.task", args=["lost-reply"], queue=QUEUE)
    app.send_task("x.task", args=["next"], queue=QUEUE)
    connection, channel = channel_for(redis_url, "a@test")
    try:
        keys = ["unacked", "unacked_index", HELD_HASH, alive_key("a@test"), QUEUE]
        fetch.run_script(redis_client, fetch_lua.FETCH, keys, ["a@test", time.time(), 20000])  # reply lost
        assert channel.qos.sweep() == 1, "held by this worker, delivered to none of its channels"
        assert channel.qos.sweep() == 0, "put back once"
        [message] = consume(channel, connection, 1)
        assert json.loads(message.body)[0] == ["lost-reply"] and message.delivery_info["redelivered"]
        message.ack()
    finally:
        connection.release()


def test_pool_registration_skips_a_process_that_exited() -> None:
    from celery.concurrency import asynpool

    poolfds.install()

    class Exited:
        _sentinel_poll = None

    class Hub:
        def add_reader(self, fd: Any, *args: Any) -> None:
            from kombu.utils.compat import fileno

            fileno(fd)

    asynpool.AsynPool._track_child_process(None, Exited(), Hub())  # type: ignore[arg-type]
    stale: dict[Any, Any] = {None: "proc"}
    asynpool.iterate_file_descriptors_safely([None], stale, Hub().add_reader)
    assert stale == {}, "the unusable descriptor is dropped, as Celery drops a stale one"


def test_records_written_before_the_upgrade_still_come_back_after_the_visibility_timeout(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """An `unacked` record of stock kombu (an older worker, or a plain `celery worker`) has no holder: the
    visibility-timeout sweep of an upgraded worker restores it the stock way."""
    payload = {
        "body": "W10=",
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {},
        "properties": {
            "delivery_info": {"exchange": "", "routing_key": QUEUE},
            "delivery_tag": "old-tag",
            "body_encoding": "base64",
        },
    }
    redis_client.hset("unacked", "old-tag", json.dumps([payload, "", QUEUE]))
    redis_client.zadd("unacked_index", {"old-tag": time.time() - 7200})  # older than the 1 h default
    connection, channel = channel_for(redis_url, "a@test")
    try:
        channel.qos.restore_visible(num=10, interval=1)
        [back] = [json.loads(raw) for raw in redis_client.lrange(QUEUE, 0, -1)]
        assert back["properties"]["delivery_tag"] == "old-tag" and back["headers"]["redelivered"] is True
        assert redis_client.hlen("unacked") == 0 and redis_client.zcard("unacked_index") == 0
    finally:
        connection.release()


@pytest.mark.parametrize("strategy", ["round_robin", "priority", "sorted"])
def test_queue_order_strategy_is_kept_across_queues(
    strategy: str, redis_url: str, redis_client: redis.Redis
) -> None:
    def run(connection: Connection, channel: Any) -> list[str]:
        app = producer(redis_url)
        for queue in ("qa", "qb"):
            for i in range(3):
                app.send_task("x.task", args=[f"{queue}{i}"], queue=queue)
        got: list[str] = []
        consumer = Consumer(
            channel,
            [Queue("qa"), Queue("qb")],
            accept=["json"],
            callbacks=[lambda body, m: (got.append(json.loads(m.body)[0][0]), m.ack())],
        )
        consumer.consume()
        deadline = time.monotonic() + 20
        while len(got) < 6 and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                connection.drain_events(timeout=0.5)
        consumer.cancel()
        return got

    options = {"queue_order_strategy": strategy}
    stock = Connection(redis_url, transport_options=options)
    ours = Connection(redis_url, transport=transport.Transport, transport_options=options)
    try:
        expected = run(stock, stock.channel())
        channel = ours.channel()
        channel.qw_holder = "a@test"
        assert run(ours, channel) == expected, expected
        assert held(redis_client) == {}
    finally:
        stock.release()
        ours.release()
