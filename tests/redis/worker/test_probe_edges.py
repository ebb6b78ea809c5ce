"""The probe's fast paths on a real Redis: what the scripts read without decoding JSON gives the same
figures as decoding it would, and odd data reads as before."""

from __future__ import annotations

import json

import redis
from queueworker.broker import keys
from queueworker.broker.stats import CHUNK, discover_queues, queue_stats

from tests.redis.worker.test_probe import NOW, heartbeat, kombu_message

SEP = keys.PRIORITY_SEP


def test_stamp_is_the_header_not_a_longer_key_that_ends_like_it(redis_client: redis.Redis) -> None:
    message = kombu_message("lookalike", None)
    # keys that end with the header's name come first; the real header is the last one
    message["headers"] = {
        f"x{keys.PUBLISHED_HEADER}": NOW - 100.0,
        "argsrepr": f'"{keys.PUBLISHED_HEADER}"',
        keys.PUBLISHED_HEADER: NOW - 4.5,
    }
    message["properties"][f"my_{keys.PUBLISHED_HEADER}"] = NOW - 200.0
    redis_client.lpush("lookalike", json.dumps(message))
    spaced = json.dumps(kombu_message("spaced", NOW - 2.0)).replace(
        f'"{keys.PUBLISHED_HEADER}": ', f'"{keys.PUBLISHED_HEADER}"  :\t'
    )
    redis_client.lpush("spaced", spaced)
    compact = json.dumps(kombu_message("compact", NOW - 1.25), separators=(",", ":"))
    redis_client.lpush("compact", compact)
    stats = queue_stats(redis_client, ["lookalike", "spaced", "compact"], now=NOW)
    assert stats["lookalike"].oldest_wait == 4.5
    assert stats["spaced"].oldest_wait == 2.0
    assert stats["compact"].oldest_wait == 1.25


def test_oldest_stamped_tail_across_lists(redis_client: redis.Redis) -> None:
    lists = keys.queue_lists("multi")
    for lst, stamp in zip(lists, (NOW - 3.0, None, NOW - 9.0, NOW - 9.0), strict=True):
        redis_client.lpush(lst, json.dumps(kombu_message("multi", stamp)))
    redis_client.lpush(lists[0], json.dumps(kombu_message("multi", NOW - 50.0)))  # newer end: not the tail
    stats = queue_stats(redis_client, ["multi"], now=NOW)
    assert stats["multi"].depths == (2, 1, 1, 1)
    assert stats["multi"].oldest_wait == 9.0


def test_counters_and_heartbeats_in_unusual_shapes(redis_client: redis.Redis) -> None:
    redis_client.set(keys.completed_key("zeros"), "007")
    redis_client.set(keys.completed_key("zero"), "0")
    redis_client.set(keys.completed_key("negative"), "-3")
    # a heartbeat in another key order, with floats, and one without counts: decoded as JSON
    redis_client.hset(
        keys.heartbeat_key("shapes"),
        mapping={
            "a": json.dumps({"ts": NOW - 1, "total": 2.5, "busy": 1, "hostname": "a"}),
            "b": json.dumps({"ts": NOW, "hostname": "b"}),
            "c": json.dumps([NOW]),
        },
    )
    heartbeat(redis_client, "shapes", "d", busy=3, total=4, ts=NOW - keys.HEARTBEAT_TTL - 1)
    stats = queue_stats(redis_client, ["zeros", "zero", "negative", "shapes"], now=NOW)
    assert [stats[q].completed_total for q in ("zeros", "zero", "negative")] == [7, 0, 0]
    assert (stats["shapes"].workers, stats["shapes"].busy_slots, stats["shapes"].total_slots) == (2, 1, 2.5)


def test_chunks_keep_the_order_and_every_queue(redis_client: redis.Redis) -> None:
    names = [f"c{i}" for i in range(CHUNK + 7)]
    pipe = redis_client.pipeline(transaction=False)
    for i, queue in enumerate(names):
        if i % 7 == 0:
            pipe.lpush(queue, json.dumps(kombu_message(queue, NOW - i)))
        if i % 11 == 0:
            pipe.set(keys.completed_key(queue), i)
    pipe.execute()
    stats = queue_stats(redis_client, list(reversed(names)), now=NOW)
    assert list(stats) == list(reversed(names))
    for i, queue in enumerate(names):
        assert stats[queue].depth == (1 if i % 7 == 0 else 0)
        assert stats[queue].oldest_wait == (float(i) if i % 7 == 0 else 0.0)
        assert stats[queue].completed_total == (i if i % 11 == 0 else 0)


def test_discovery_reads_binding_sets_around_a_key_that_is_not_one(redis_client: redis.Redis) -> None:
    redis_client.sadd(f"{keys.BINDING_PREFIX}one", f"one{SEP}{SEP}one", f"x{SEP}{SEP}shared")
    redis_client.sadd(f"{keys.BINDING_PREFIX}two", f"two{SEP}{SEP}two", f"y{SEP}{SEP}shared")
    redis_client.sadd(
        f"{keys.BINDING_PREFIX}odd", f"a{SEP}b", f"a{SEP}b{SEP}", f"a{SEP}b{SEP}c{SEP}d", f"{SEP}{SEP}fine"
    )
    assert discover_queues(redis_client) == ["fine", "one", "shared", "two"]
    redis_client.set(f"{keys.BINDING_PREFIX}broken", "not a set")
    assert discover_queues(redis_client) == ["fine", "one", "shared", "two"]
