"""Connections to a Sentinel-managed primary that treat a failover's refusals as a lost connection.

During a failover the new primary may refuse writes for a moment: `NOREPLICAS` while fewer replicas than
`min-replicas-to-write` are connected to it (the chart's sentinel mode sets 1), `MASTERDOWN` while a
replica has lost its primary, `TRYAGAIN` during a resharding-like pause. redis-py raises those as
ResponseError, which Celery takes for an unrecoverable error: a worker whose consumer restarted at that
moment exited. Here they are connection errors (the connection is dropped and the next one asks the
sentinels again), which kombu, Celery and the publish retry recover from, like redis-py's own handling of
a demoted primary's READONLY.
"""

from __future__ import annotations

from typing import Any

import redis
from redis.sentinel import Sentinel, SentinelManagedConnection, SentinelManagedSSLConnection

from queueworker.broker.forkgate import Gated

#: Error replies that mean "this primary cannot take writes yet": retried after a reconnection.
TRANSIENT = ("NOREPLICAS", "MASTERDOWN", "TRYAGAIN")


class FailoverInProgress(redis.exceptions.ConnectionError):
    """The primary refused a command because a failover is not over (a TRANSIENT reply)."""


class Connection(SentinelManagedConnection):
    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().read_response(*args, **kwargs)
        except redis.exceptions.ResponseError as exc:
            if not str(exc).startswith(TRANSIENT):
                raise
            self.disconnect()
            raise FailoverInProgress(f"the primary refused the command during a failover: {exc}") from exc


class SSLConnection(Gated, Connection, SentinelManagedSSLConnection):
    """TLS: opened under the fork gate (broker/forkgate.py), the sentinels' answer included."""


def master_for(sentinel: Sentinel, name: str, tls: bool, **kwargs: Any) -> redis.Redis:
    """`sentinel.master_for(name)` with these connections (TLS ones when `tls`)."""
    connection_class = SSLConnection if tls else Connection
    return sentinel.master_for(name, redis_class=redis.Redis, connection_class=connection_class, **kwargs)


def adopt(sentinel: Any) -> bool:
    """Make every client that `sentinel` (a redis-py Sentinel another library made: redbeat's) hands out
    from now on use these connections. True when it changed."""
    if not isinstance(sentinel, Sentinel) or "connection_class" in sentinel.connection_kwargs:
        return False
    tls = bool(sentinel.connection_kwargs.get("ssl"))
    sentinel.connection_kwargs["connection_class"] = SSLConnection if tls else Connection
    return True
