"""The prefork pool survives a broker reconnect after one of its processes exited.

On every reconnect Celery's consumer registers the pool with the event loop again, and AsynPool then adds a
reader for each process's sentinel. A process that exited meanwhile (a task cancelled on connection loss,
max-tasks-per-child, a crash) was untracked: its sentinel is None, kombu's hub raises
`ValueError('file descriptor is None')`, and Celery stops the worker ("Unrecoverable error", the class of
celery/celery#9250). Such a process is skipped here (maintain_pool replaces it), and a None or closed file
descriptor met while registering counts as the stale descriptor Celery already drops (OSError).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import bootsteps

log = logging.getLogger(__name__)
_installed: list[bool] = []


class PoolFds(bootsteps.Step):
    """Worker step: after the pool is made, and so before the consumer (Celery's last step) first registers
    it with the event loop, its registration skips exited processes (process-wide, once)."""

    label = "QueueWorker pool descriptors"
    requires = ("celery.worker.components:Pool",)

    def create(self, worker: Any) -> None:
        install()


def install() -> None:
    if _installed:
        return
    from celery.concurrency import asynpool

    track = asynpool.AsynPool._track_child_process
    iterate = asynpool.iterate_file_descriptors_safely

    def _track_child_process(self: Any, proc: Any, hub: Any) -> Any:
        if getattr(proc, "_sentinel_poll", 0) is None:  # exited and untracked: maintain_pool replaces it
            log.info("pool process %s has exited: not registered again", getattr(proc, "pid", "?"))
            return None
        return track(self, proc, hub)

    def iterate_file_descriptors_safely(
        fds_iter: Any, source_data: Any, hub_method: Any, *args: Any, **kwargs: Any
    ) -> Any:
        def method(fd: Any, *a: Any, **kw: Any) -> Any:
            try:
                return hub_method(fd, *a, **kw)
            except ValueError as exc:  # fileno(None), or a closed file object
                raise OSError(f"file descriptor {fd!r} unusable: {exc}") from exc

        return iterate(fds_iter, source_data, method, *args, **kwargs)

    asynpool.AsynPool._track_child_process = _track_child_process
    asynpool.iterate_file_descriptors_safely = iterate_file_descriptors_safely
    _installed.append(True)
