"""A prefork pool child never inherits a held lock: the worker's threads (heartbeats, lease, metrics server)
take the runtime's module locks, and OpenSSL's while they connect, as the pool forks; a child that found one
held would wait forever on its first redelivered task (brokerclient), first metric (metrics) or first TLS
connection (broker/forkgate.py)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

import pytest
from queueworker.broker import forkgate
from queueworker.broker.client import connect
from queueworker.worker import brokerclient, metrics


def child_can_take(lock_of: Callable[[], threading.Lock]) -> bool:
    """Fork while this process holds the lock; the child reports whether it can take its own at once."""
    held = lock_of()
    with held:
        pid = os.fork()
        if pid == 0:  # the child: exit 0 when the lock is free
            os._exit(0 if lock_of().acquire(timeout=2) else 1)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


@pytest.mark.parametrize(
    "lock_of",
    [lambda: brokerclient._lock, lambda: metrics._lock],
    ids=["brokerclient", "metrics"],
)
def test_a_forked_child_gets_a_free_lock(lock_of: Callable[[], threading.Lock]) -> None:
    assert child_can_take(lock_of)


def test_a_forked_child_does_not_reuse_the_parents_clients() -> None:
    brokerclient._clients[(os.getpid(), "redis://parent")] = object()  # type: ignore[assignment]
    try:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.write(write, str(len(brokerclient._clients)).encode())
            os._exit(0)
        os.waitpid(pid, 0)
        assert os.read(read, 16) == b"0"
    finally:
        brokerclient._clients.pop((os.getpid(), "redis://parent"), None)


def test_a_fork_waits_until_a_connection_being_opened_is_open() -> None:
    """OpenSSL's locks: a child forked while a thread loads a CA or shakes hands would inherit them held."""
    entered, released = threading.Event(), []

    def connecting() -> None:
        with forkgate.opening():
            entered.set()
            time.sleep(0.5)
            released.append(time.time())

    thread = threading.Thread(target=connecting)
    thread.start()
    entered.wait(5)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, repr(time.time()).encode())
        os._exit(0 if forkgate._gate.acquire(timeout=2) else 1)
    _, status = os.waitpid(pid, 0)
    thread.join()
    forked_at = float(os.read(read, 64))
    assert os.waitstatus_to_exitcode(status) == 0, "the child's gate is free"
    assert forked_at >= released[0], "the fork waited for the connection"


def test_tls_clients_open_their_connections_under_the_gate() -> None:
    standalone = connect("rediss://:pw@127.0.0.1:6390/0?ssl_cert_reqs=none")
    assert issubclass(standalone.connection_pool.connection_class, forkgate.Gated)
    plain = connect("redis://:pw@127.0.0.1:6390/0")
    assert not issubclass(plain.connection_pool.connection_class, forkgate.Gated)
    sentinel = connect("sentinel://:pw@127.0.0.1:26390/0?ssl_cert_reqs=none")
    assert issubclass(sentinel.connection_pool.connection_class, forkgate.Gated)
