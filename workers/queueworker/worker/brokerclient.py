"""One plain redis-py client per process for the runtime's own keys (heartbeats, redelivery counters).

Separate from kombu's connections so a runtime write never interferes with consuming; short socket
timeouts so a dead Redis shows up as an error, not a hang.
"""

from __future__ import annotations

import os
import threading

import redis
from celery import Celery

_lock = threading.Lock()
_clients: dict[tuple[int, str], redis.Redis] = {}


def is_redis_url(url: str) -> bool:
    return url.split("://", 1)[0] in ("redis", "rediss", "unix")


def client_for(app: Celery, timeout: float | None = None) -> redis.Redis | None:
    """The process's client for `app`'s broker, or None when the broker is not plain Redis."""
    url = str(app.conf.broker_url or "")
    if not is_redis_url(url):
        return None
    key = (os.getpid(), url)  # a forked pool child must not share its parent's sockets
    with _lock:
        client = _clients.get(key)
        if client is None:
            options = app.conf.broker_transport_options or {}
            socket_timeout = float(timeout or options.get("socket_timeout") or 10.0)
            client = redis.Redis.from_url(
                url,
                socket_timeout=socket_timeout,
                socket_connect_timeout=socket_timeout,
                socket_keepalive=True,
                health_check_interval=int(max(1.0, socket_timeout)),
            )
            _clients[key] = client
        return client
