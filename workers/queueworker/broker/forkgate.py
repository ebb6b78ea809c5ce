"""No TLS connection is being opened while the process forks.

A Celery worker's prefork pool forks its children while the runtime's threads (heartbeats, the fetch
lease) may be connecting to the broker. OpenSSL takes internal locks while it loads a CA and shakes hands;
a child forked at that moment starts with such a lock held by a thread it does not have, and its first TLS
connection (a redelivery counter, or a task's own client) waits on it forever: the pool slot is lost and
the pod's warm shutdown hangs for its whole grace period. Seen on the local cluster in about one worker
start in ten.

So opening a TLS connection and forking exclude each other: the connection classes here hold the gate
while they connect (bounded by the connect and socket timeouts), and a fork waits for it
(`os.register_at_fork`). A child starts with a free gate of its own.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis

_gate = threading.Lock()


@contextmanager
def opening() -> Iterator[None]:
    """Held while a connection is opened: a fork waits until it is done."""
    gate = _gate
    with gate:
        yield


def _before_fork() -> None:
    _gate.acquire()


def _after_fork_in_parent() -> None:
    _gate.release()


def _after_fork_in_child() -> None:
    global _gate  # noqa: PLW0603 - the child's gate is a new lock, free
    _gate = threading.Lock()


os.register_at_fork(
    before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child
)


class Gated:
    """A redis-py connection class mixin: `connect` (which loads the CA and shakes hands) holds the gate."""

    def connect(self, *args: Any, **kwargs: Any) -> Any:
        with opening():
            return super().connect(*args, **kwargs)  # type: ignore[misc]


class SSLConnection(Gated, redis.SSLConnection):
    """redis-py's TLS connection, opened under the gate."""
