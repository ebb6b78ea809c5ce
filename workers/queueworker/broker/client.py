"""connect(url): the one way QueueWorker's own code gets a redis-py client for the broker, whatever its
scheme (broker/url.py). In sentinel mode the client asks the sentinels for the current primary at each
(re)connection (redis-py's Sentinel), so a dropped connection finds a new primary by itself."""

from __future__ import annotations

from typing import Any

import redis
from redis.sentinel import Sentinel

from queueworker.broker import failover, forkgate
from queueworker.broker.url import Broker, parse, sentinel_kwargs


def connect(
    url: str | Broker,
    *,
    timeout: float = 5.0,
    connect_timeout: float | None = None,
    decode_responses: bool = False,
    **options: Any,
) -> redis.Redis:
    """A client for the broker at `url` (redis://, rediss://, unix:// or sentinel://).

    `timeout` is the socket timeout; `options` go to redis-py (retry, health_check_interval, ...).
    """
    broker = url if isinstance(url, Broker) else parse(url)
    socket = {
        "socket_timeout": timeout,
        "socket_connect_timeout": connect_timeout if connect_timeout is not None else timeout,
    }
    if not broker.sentinel:
        if broker.scheme == "unix":
            return redis.Redis.from_url(broker.url, decode_responses=decode_responses, **socket, **options)
        if broker.tls:
            options = {"connection_class": forkgate.SSLConnection, **options}
        return redis.Redis.from_url(
            broker.url.split("?", 1)[0],  # the query's ssl_* and db are passed below
            db=broker.db,
            decode_responses=decode_responses,
            **socket,
            **broker.ssl_options(),
            **options,
        )
    data: dict[str, Any] = {**socket, **options, "db": broker.db, "decode_responses": decode_responses}
    if broker.password:
        data["password"] = broker.password
    if broker.username:
        data["username"] = broker.username
    if broker.tls:
        data["ssl"] = True
        data.update(broker.ssl_options())
    sentinel = Sentinel(list(broker.hosts), sentinel_kwargs=sentinel_kwargs(broker, **socket), **data)
    return failover.master_for(sentinel, broker.master, tls=broker.tls)


def replicas(client: redis.Redis) -> int:
    """How many replicas the broker's primary has connected now (INFO replication)."""
    info = client.info("replication")
    return int(info.get("connected_slaves", 0) or 0)
