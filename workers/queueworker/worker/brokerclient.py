"""One redis-py client per process for the runtime's own keys (heartbeats, lease, redelivery counters).

Separate from kombu's connections so a runtime write never interferes with consuming; short socket
timeouts so a dead Redis shows up as an error, not a hang. Any scheme the broker layer accepts (in
sentinel mode the client follows the primary the sentinels name).
"""

from __future__ import annotations

import os
import threading

import redis
from celery import Celery

from queueworker.broker.client import connect
from queueworker.broker.url import BrokerURLError, parse
from queueworker.worker.brokerconf import URL_KEY
from queueworker.worker.settings import current

_lock = threading.Lock()
_clients: dict[tuple[int, str], redis.Redis] = {}


def _forked() -> None:
    """A prefork pool child starts with a lock of its own: one the parent's heartbeat or lease thread held
    at fork time would stay held in the child, and its first redelivered task would wait on it forever."""
    global _lock  # noqa: PLW0603 - the module lock itself is replaced in the child
    _lock = threading.Lock()
    _clients.clear()  # the parent's (keyed by its pid: never this process's)


os.register_at_fork(after_in_child=_forked)


def broker_url(app: Celery) -> str:
    """The broker URL as given to make_app (with its TLS query), else the app's broker_url."""
    return str(app.conf.get(URL_KEY) or app.conf.broker_url or "")


def client_for(app: Celery, timeout: float | None = None) -> redis.Redis | None:
    """The process's client for `app`'s broker, or None when the broker is not Redis."""
    url = broker_url(app)
    try:
        broker = parse(url, current().broker_env())
    except BrokerURLError:
        return None
    key = (os.getpid(), url)  # a forked pool child must not share its parent's sockets
    with _lock:
        client = _clients.get(key)
        if client is None:
            options = app.conf.broker_transport_options or {}
            socket_timeout = float(timeout or options.get("socket_timeout") or 10.0)
            client = connect(
                broker,
                timeout=socket_timeout,
                socket_keepalive=True,
                health_check_interval=int(max(1.0, socket_timeout)),
            )
            _clients[key] = client
        return client
