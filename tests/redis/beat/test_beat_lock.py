"""The beat's lock (queueworker.beat.scheduler.BeatLock): taken when free, extended when this beat's, never
taken from another holder (an older redbeat beat's lock included), held only when confirmed by a replica
where the broker has them, and released only by its holder."""

from __future__ import annotations

import time

import redis
from queueworker.beat.scheduler import BeatLock
from queueworker.worker.transport.durable import Durability

KEY = "redbeat::lock"


def lock(always: bool = False) -> BeatLock:
    return BeatLock(KEY, 5.0, Durability(min_replicas=1, timeout=0.1, always=always, aof=False))


def test_taken_when_free_extended_by_its_holder_refused_to_another(redis_client: redis.Redis) -> None:
    first, second = lock(), lock()
    assert first.renew(redis_client) and first.held()
    assert not second.renew(redis_client) and not second.held()
    redis_client.pexpire(KEY, 100)
    assert first.renew(redis_client), "extended by its holder"
    assert redis_client.pttl(KEY) > 4000
    second.release(redis_client)
    assert redis_client.get(KEY) == first.token.encode(), "only its holder releases it"
    first.release(redis_client)
    assert redis_client.get(KEY) is None and not first.held()
    assert second.renew(redis_client), "free again"


def test_an_older_redbeat_beats_lock_is_respected(redis_client: redis.Redis) -> None:
    redis_client.set(KEY, "some-redbeat-token", px=5000)
    assert not lock().renew(redis_client)


def test_a_renewal_no_replica_confirms_is_not_a_lock(redis_client: redis.Redis) -> None:
    """In sentinel mode every renewal is confirmed: this Redis has no replica, so the lock is written but
    not held; once it was held, it is lost when it can no longer be confirmed."""
    unconfirmed = lock(always=True)
    started = time.monotonic()
    assert not unconfirmed.renew(redis_client) and not unconfirmed.held()
    assert time.monotonic() - started < 2
    assert redis_client.get(KEY) == unconfirmed.token.encode()
    assert not lock().renew(redis_client), "nobody else takes it meanwhile"
