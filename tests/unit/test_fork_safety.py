"""A prefork pool child never inherits a held lock: the worker's threads (heartbeats, lease, metrics server)
take the runtime's module locks while the pool forks, and a child that found one held would wait forever
on its first redelivered task (brokerclient) or first metric (metrics)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

import pytest
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
