"""The queue probe on a real Redis: every figure exact, constant round trips, discovery with SCAN."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery import Celery
from queueworker import make_app
from queueworker.broker import keys
from queueworker.broker.stats import CHUNK, SCAN_COUNT, SCAN_ROUNDS, QueueStats, discover_queues, queue_stats
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.support.redis_server import RedisServer

NOW = 2_000_000_000.0


@pytest.fixture
def publisher(redis_url: str) -> Iterator[Celery]:
    """A make_app app: real kombu messages with its publish stamp. A stamp given explicitly is kept,
    so waits can be checked exactly."""
    app = make_app("probe-tests", broker_url=redis_url)
    yield app
    app.close()


def publish(app: Celery, queue: str, stamp: float | None = None, priority: int | None = None) -> None:
    headers = {keys.PUBLISHED_HEADER: stamp} if stamp is not None else {}
    app.send_task("tests.noop", args=[1], queue=queue, priority=priority, headers=headers)


def push_unstamped(client: redis.Redis, queue: str, priority: int = 0) -> None:
    """A message from a producer that does not stamp (not a make_app app), as kombu would store it."""
    client.lpush(keys.queue_lists(queue)[priority // 3], json.dumps(kombu_message(queue, None, priority)))


def tail_stamp(client: redis.Redis, key: str) -> float:
    """The stamp of a list's oldest message, read with the json module (not the probe's script)."""
    raw = client.lindex(key, -1)
    assert raw is not None
    return float(json.loads(raw)["headers"][keys.PUBLISHED_HEADER])


def heartbeat(client: redis.Redis, queue: str, host: str, busy: int, total: int, ts: float) -> None:
    value = {"hostname": host, "pid": 7, "busy": busy, "total": total, "processed": 3, "ts": ts}
    client.hset(keys.heartbeat_key(queue), host, json.dumps(value))


def kombu_message(queue: str, stamp: float | None, priority: int = 0) -> dict[str, Any]:
    """A task message as kombu's Redis transport stores it (body base64, headers, properties)."""
    headers: dict[str, Any] = {"lang": "py", "task": "tests.noop", "id": f"id-{queue}", "argsrepr": "[1]"}
    if stamp is not None:
        headers[keys.PUBLISHED_HEADER] = stamp
    return {
        "body": "W1sxXSwge30sIHt9XQ==",
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": headers,
        "properties": {
            "correlation_id": f"id-{queue}",
            "delivery_mode": 2,
            "priority": priority,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "body_encoding": "base64",
            "delivery_tag": f"tag-{queue}",
        },
    }


def unacked(client: redis.Redis, tag: str, routing_key: Any, exchange: str = "") -> None:
    """An entry of kombu's `unacked` hash: JSON [message, exchange, routing_key]."""
    message = kombu_message(str(routing_key), 1.0)
    client.hset(keys.UNACKED_HASH, tag, json.dumps([message, exchange, routing_key]))


def test_depth_per_priority_list_and_oldest_wait(redis_client: redis.Redis, publisher: Celery) -> None:
    for stamp, priority in [
        (NOW - 100.0, 0),
        (NOW - 90.5, 3),
        (NOW - 80.25, 6),
        (NOW - 120.125, 9),
        (NOW - 10.0, 0),
        (NOW - 5.0, 9),
        (NOW - 4.0, None),
    ]:
        publish(publisher, "pq", stamp, priority)
    stats = queue_stats(redis_client, ["pq"], now=NOW)["pq"]
    assert stats.depths == (3, 1, 1, 2)
    assert stats.depth == 7
    assert stats.priority_depth == 4
    assert stats.oldest_wait == NOW - (NOW - 120.125)  # the priority-9 list's tail waited longest
    assert stats.reserved == 0
    assert stats.workers == 0
    assert stats.orphaned is True
    assert stats.target_wait is None
    assert stats.completed_total == 0


def test_make_app_stamps_every_publish(redis_client: redis.Redis, publisher: Celery) -> None:
    before = time.time()
    publish(publisher, "stamped")
    publish(publisher, "stamped", priority=9)
    publish(publisher, "stamped")
    after = time.time()
    first = tail_stamp(redis_client, "stamped")
    prio = tail_stamp(redis_client, keys.queue_lists("stamped")[3])
    assert before <= first <= prio <= after
    stats = queue_stats(redis_client, ["stamped"], now=after + 60.0)["stamped"]
    assert stats.depths == (2, 0, 0, 1)
    assert stats.oldest_wait == after + 60.0 - first


def test_empty_queue_waits_zero_and_unstamped_oldest_is_unknown(
    redis_client: redis.Redis, publisher: Celery
) -> None:
    push_unstamped(redis_client, "plain")
    publish(publisher, "plain", NOW - 3.0)  # newer and stamped: the oldest (the tail) is not
    push_unstamped(redis_client, "mixed")
    publish(publisher, "mixed", NOW - 7.5, 6)
    stats = queue_stats(redis_client, ["empty", "plain", "mixed"], now=NOW)
    assert stats["empty"] == QueueStats("empty", 0, (0, 0, 0, 0), 0, 0.0, 0, 0, 0, 0, None, False)
    assert stats["plain"].depth == 2
    assert stats["plain"].oldest_wait is None
    assert stats["mixed"].depths == (1, 0, 1, 0)
    assert stats["mixed"].oldest_wait == 7.5  # the only stamped tail
    assert list(stats) == ["empty", "plain", "mixed"]


def test_stamp_in_the_future_waits_zero(redis_client: redis.Redis, publisher: Celery) -> None:
    publish(publisher, "skew", NOW + 2.0)
    assert queue_stats(redis_client, ["skew"], now=NOW)["skew"].oldest_wait == 0.0


def test_heartbeats_live_and_stale(redis_client: redis.Redis, publisher: Celery) -> None:
    publish(publisher, "hb", NOW - 1.0)
    heartbeat(redis_client, "hb", "w1@a", busy=2, total=4, ts=NOW - 1.0)
    heartbeat(redis_client, "hb", "w2@b", busy=1, total=2, ts=NOW - keys.HEARTBEAT_TTL)  # just alive
    heartbeat(redis_client, "hb", "w3@c", busy=8, total=8, ts=NOW - keys.HEARTBEAT_TTL - 0.001)  # dead
    redis_client.hset(keys.heartbeat_key("hb"), "garbage", "not json")
    heartbeat(redis_client, "gone", "w4@d", busy=0, total=1, ts=NOW - 60.0)
    publish(publisher, "gone", NOW - 1.0)
    stats = queue_stats(redis_client, ["hb", "gone"], now=NOW)
    assert (stats["hb"].workers, stats["hb"].busy_slots, stats["hb"].total_slots) == (2, 3, 6)
    assert stats["hb"].idle_slots == 3
    assert stats["hb"].orphaned is False
    assert (stats["gone"].workers, stats["gone"].total_slots) == (0, 0)
    assert stats["gone"].orphaned is True


def test_completed_counter_and_targets(redis_client: redis.Redis) -> None:
    redis_client.incrby(keys.completed_key("done"), 41)
    redis_client.incrby(keys.completed_key("done"), 1)
    redis_client.set(keys.completed_key("junk"), "lots")
    redis_client.hset(
        keys.TARGETS_HASH,
        mapping={
            "done": json.dumps({"targetWaitSeconds": 12.5, "queueworker": "shop/emails"}),
            "junk": "{not json",
            "other": json.dumps({"queueworker": "shop/other"}),
        },
    )
    stats = queue_stats(redis_client, ["done", "junk", "other"], now=NOW)
    assert stats["done"].completed_total == 42
    assert stats["done"].target_wait == 12.5
    assert stats["junk"].completed_total == 0
    assert stats["junk"].target_wait is None
    assert stats["other"].target_wait is None


def test_reserved_counts_unacked_entries_by_routing_key(redis_client: redis.Redis) -> None:
    for i in range(3):
        unacked(redis_client, f"a{i}", "alpha")
    unacked(redis_client, "b0", "beta", exchange="beta")
    unacked(redis_client, "q0", 'we"ird')  # escaped quote: decoded in full
    unacked(redis_client, "u0", "caf\u00e9")  # \u escape in the JSON
    message = kombu_message("delta", None)
    redis_client.hset(keys.UNACKED_HASH, "d0", json.dumps([message, "", None]))  # from delivery_info
    redis_client.hset(keys.UNACKED_HASH, "x0", "not json")
    stats = queue_stats(redis_client, ["alpha", "beta", 'we"ird', "caf\u00e9", "delta", "zeta"], now=NOW)
    assert {q: s.reserved for q, s in stats.items()} == {
        "alpha": 3,
        "beta": 1,
        'we"ird': 1,
        "caf\u00e9": 1,
        "delta": 1,
        "zeta": 0,
    }


def test_reserved_in_a_large_unacked_hash(redis_client: redis.Redis) -> None:
    pipe = redis_client.pipeline(transaction=False)
    big = "x" * 1500  # bodies are never decoded: only each entry's tail is read
    for i in range(10_000):
        queue = f"rq{i % 7}"
        message = kombu_message(queue, 1.0)
        message["body"] = big
        pipe.hset(keys.UNACKED_HASH, f"t{i}", json.dumps([message, "", queue]))
    pipe.execute()
    stats = queue_stats(redis_client, [f"rq{i}" for i in range(7)], now=NOW)
    assert [stats[f"rq{i}"].reserved for i in range(7)] == [1429, 1429, 1429, 1429, 1428, 1428, 1428]


def test_wrong_type_keys_read_as_empty(redis_client: redis.Redis) -> None:
    redis_client.set("strq", "a string, not a list")
    redis_client.hset(f"strq{keys.PRIORITY_SEP}3", "f", "v")
    redis_client.set(keys.heartbeat_key("strq"), "not a hash")
    redis_client.lpush("ok", json.dumps(kombu_message("ok", NOW - 2.0)))
    stats = queue_stats(redis_client, ["strq", "ok"], now=NOW)
    assert stats["strq"].depth == 0
    assert stats["strq"].workers == 0
    assert stats["ok"].depth == 1
    assert stats["ok"].oldest_wait == 2.0


class CountingConnection(redis.Connection):
    """Counts writes to the socket: a pipeline is one write, so writes are round trips."""

    writes = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingConnection.writes += 1
        super().send_packed_command(command, check_health)


def round_trips(server: RedisServer, queues: list[str], discover: bool = False) -> int:
    pool = redis.ConnectionPool(connection_class=CountingConnection, host="127.0.0.1", port=server.port)
    client = redis.Redis(connection_pool=pool)
    client.ping()
    before = CountingConnection.writes
    queue_stats(client, queues, discover=discover, now=NOW)
    used = CountingConnection.writes - before
    client.close()
    return used


def test_constant_round_trips(redis_server: RedisServer, redis_client: redis.Redis) -> None:
    many = [f"m{i}" for i in range(3 * CHUNK + 5)]
    pipe = redis_client.pipeline(transaction=False)
    for i, queue in enumerate(many):
        if i % 2:
            pipe.lpush(queue, json.dumps(kombu_message(queue, NOW - i)))
            pipe.lpush(f"{queue}{keys.PRIORITY_SEP}9", json.dumps(kombu_message(queue, NOW - i)))
        heartbeat(pipe, queue, "w@h", busy=1, total=1, ts=NOW)
    pipe.execute()
    assert round_trips(redis_server, ["one"]) == 1
    assert round_trips(redis_server, many) == 1
    for queue in many:
        pipe.sadd(f"{keys.BINDING_PREFIX}{queue}", f"{queue}{keys.PRIORITY_SEP}{keys.PRIORITY_SEP}{queue}")
    pipe.execute()
    # discovery: one server-side SCAN call (with the targets) covers this keyspace; then the probe
    assert redis_client.dbsize() < SCAN_COUNT * SCAN_ROUNDS
    assert round_trips(redis_server, [], discover=True) == 2


def test_discovery_in_slices(redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """A keyspace larger than one discovery call visits: more calls, same answer, each call bounded."""
    sep = keys.PRIORITY_SEP
    queues = [f"sliced{i:03d}" for i in range(300)]
    for queue in queues:
        redis_client.sadd(f"{keys.BINDING_PREFIX}{queue}", f"{queue}{sep}{sep}{queue}")
    redis_client.mset({f"filler:{i}": "x" for i in range(3000)})
    monkeypatch.setattr("queueworker.broker.stats.SCAN_COUNT", 100)
    monkeypatch.setattr("queueworker.broker.stats.SCAN_ROUNDS", 2)
    before = redis_client.info("commandstats").get("cmdstat_eval", {}).get("calls", 0)
    assert discover_queues(redis_client) == queues
    calls = redis_client.info("commandstats")["cmdstat_eval"]["calls"] - before
    assert calls >= 3300 // (100 * 2) // 2  # several slices (SCAN's COUNT is a hint, not exact)


def test_discovery_with_scan(redis_client: redis.Redis, publisher: Celery) -> None:
    publish(publisher, "emails", NOW - 30.0)
    publish(publisher, "reports", NOW - 1.0, 9)
    # Celery's own bindings: control (pidbox), replies and events are not task queues
    sep = keys.PRIORITY_SEP
    redis_client.sadd(f"{keys.BINDING_PREFIX}celery.pidbox", f"{sep}{sep}w1@h.celery.pidbox")
    redis_client.sadd(f"{keys.BINDING_PREFIX}reply.celery.pidbox", f"abc{sep}{sep}abc")
    redis_client.sadd(f"{keys.BINDING_PREFIX}celeryev", f"worker.#{sep}{sep}celeryev.1234")
    redis_client.sadd(f"{keys.BINDING_PREFIX}topics", f"a.*{sep}a.*{sep}topical", f"b{sep}b{sep}bound")
    redis_client.hset(keys.TARGETS_HASH, "scaled-to-zero", json.dumps({"targetWaitSeconds": 5.0}))
    redis_client.mset({f"filler:{i}": "x" for i in range(2 * SCAN_COUNT)})  # several SCAN calls
    assert discover_queues(redis_client) == ["bound", "emails", "reports", "topical"]
    stats = queue_stats(redis_client, ["named"], discover=True, now=NOW)
    assert list(stats) == ["named", "bound", "emails", "reports", "topical", "scaled-to-zero"]
    assert stats["emails"].oldest_wait == 30.0
    assert stats["reports"].depths == (0, 0, 0, 1)
    assert stats["scaled-to-zero"].target_wait == 5.0
    assert stats["scaled-to-zero"].depth == 0


def test_a_thousand_discovered_queues(redis_client: redis.Redis) -> None:
    pipe = redis_client.pipeline(transaction=False)
    expected: dict[str, tuple[int, ...]] = {}
    sep = keys.PRIORITY_SEP
    for i in range(1000):
        queue = f"app{i:04d}"
        pipe.sadd(f"{keys.BINDING_PREFIX}{queue}", f"{queue}{sep}{sep}{queue}")
        depths = [i % 3, 0, 0, 0]
        if i % 5 == 0:
            depths[1:] = [1, 0, i % 2 + 1]
        for lst, n in zip(keys.queue_lists(queue), depths, strict=True):
            for k in range(n):
                pipe.lpush(lst, json.dumps(kombu_message(queue, NOW - i - k)))
        expected[queue] = tuple(depths)
    pipe.execute()
    stats = queue_stats(redis_client, discover=True, now=NOW)
    assert {q: s.depths for q, s in stats.items()} == expected
    assert all(s.oldest_wait == (float(int(q[3:])) if s.depth else 0.0) for q, s in stats.items())
    assert sum(s.orphaned for s in stats.values()) == sum(1 for d in expected.values() if sum(d))


def test_unreachable_redis_raises() -> None:
    server = RedisServer().start()
    client = redis.Redis(port=server.port, retry=Retry(NoBackoff(), 0))  # fail at once
    client.ping()
    server.stop()
    with pytest.raises(redis.RedisError):
        queue_stats(client, ["q"], now=NOW)
    with pytest.raises(redis.RedisError):
        queue_stats(client, discover=True, now=NOW)


def test_probe_works_on_a_full_noeviction_redis() -> None:
    """The probe only reads: a Redis at maxmemory (noeviction, refusing writes) still answers it."""
    with RedisServer(maxmemory_policy="noeviction") as server:
        client = server.client()
        client.lpush("full", json.dumps(kombu_message("full", NOW - 9.0)))
        used = int(client.info("memory")["used_memory"])
        client.config_set("maxmemory", used // 2)
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            client.set("more", "x")
        stats = queue_stats(client, ["full"], now=NOW)
        assert (stats["full"].depth, stats["full"].oldest_wait) == (1, 9.0)
        client.close()


def test_a_client_decoding_responses_gets_the_same_figures(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    redis_client.lpush("txt", json.dumps(kombu_message("txt", NOW - 1.5)))
    redis_client.sadd(f"{keys.BINDING_PREFIX}txt", f"txt{keys.PRIORITY_SEP}{keys.PRIORITY_SEP}txt")
    redis_client.hset(keys.TARGETS_HASH, "txt", json.dumps({"targetWaitSeconds": 4}))
    unacked(redis_client, "t1", "txt")
    text_client = redis.Redis(port=redis_server.port, decode_responses=True)
    assert queue_stats(text_client, discover=True, now=NOW) == queue_stats(
        redis_client, discover=True, now=NOW
    )
    assert queue_stats(text_client, discover=True, now=NOW)["txt"].reserved == 1
    text_client.close()


def test_bytes_that_are_not_utf8_do_not_break_a_probe(redis_client: redis.Redis) -> None:
    entry = b'[{"body": ""}, "", "\xff\xfe"]'
    redis_client.hset(keys.UNACKED_HASH, "bad", entry)
    unacked(redis_client, "good", "fine")
    redis_client.sadd(f"{keys.BINDING_PREFIX}odd", b"\xff\x06\x16\x06\x16\xff")
    redis_client.sadd(f"{keys.BINDING_PREFIX}fine", f"fine{keys.PRIORITY_SEP}{keys.PRIORITY_SEP}fine")
    stats = queue_stats(redis_client, discover=True, now=NOW)
    assert list(stats) == ["fine"]
    assert stats["fine"].reserved == 1
