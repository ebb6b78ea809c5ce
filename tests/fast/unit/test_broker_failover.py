"""Sentinel-managed clients made elsewhere (redbeat's) get the connections that take a failover's
refusals for a lost connection (broker/failover.py); no server is needed to build them."""

from __future__ import annotations

import pytest
import redis
from queueworker.broker import failover
from redis.sentinel import Sentinel


@pytest.mark.parametrize(("tls", "expected"), [(False, failover.Connection), (True, failover.SSLConnection)])
def test_adopt_gives_a_sentinels_clients_the_failover_connections(tls: bool, expected: type) -> None:
    sentinel = Sentinel([("127.0.0.1", 1)], ssl=True) if tls else Sentinel([("127.0.0.1", 1)])
    assert failover.adopt(sentinel)
    assert not failover.adopt(sentinel), "once"
    client = sentinel.master_for("mymaster", redis_class=redis.Redis)
    assert client.connection_pool.connection_class is expected


def test_adopt_leaves_anything_else() -> None:
    assert not failover.adopt(None)
    assert not failover.adopt(redis.Redis())
