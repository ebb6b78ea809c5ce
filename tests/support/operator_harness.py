"""Running the real operator in a test's event loop, and waiting on what the API server holds."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

from hack.cluster.procs import free_port


def operator_settings(redis_url: str, autoscale_interval: str | None = "1", **more: str) -> dict[str, str]:
    """The QUEUEWORKER_* settings of an operator under test: its broker, its autoscaling tick (None: the
    operator's default), no drift check within a test's time, a metrics port of its own; `more` adds
    others (KUBECONFIG=...)."""
    settings = {"QUEUEWORKER_REDIS_URL": redis_url}
    if autoscale_interval is not None:
        settings["QUEUEWORKER_AUTOSCALE_INTERVAL"] = autoscale_interval
    settings |= {"QUEUEWORKER_DRIFT_INTERVAL": "3600", "QUEUEWORKER_METRICS_PORT": str(free_port())}
    return settings | more


@contextlib.contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.asynccontextmanager
async def running_operator(
    namespaces: list[str] | None = None, memo: Any = None
) -> AsyncIterator[asyncio.Task[None]]:
    """Run the real operator (`kopf run -m queueworker_operator --standalone`) in this loop.

    The caller sets $KUBECONFIG and QUEUEWORKER_* first; leaving the block cancels the operator at once.
    """
    import kopf
    import queueworker_operator.handlers  # noqa: F401  # registers the handlers

    ready = asyncio.Event()
    stop = asyncio.Event()
    kwargs: dict[str, Any] = {
        "clusterwide": namespaces is None,
        "standalone": True,
        "ready_flag": ready,
        "stop_flag": stop,
    }
    if namespaces is not None:
        kwargs["namespaces"] = namespaces
    memo = kopf.Memo() if memo is None else memo
    kwargs["memo"] = memo
    task = asyncio.create_task(kopf.operator(**kwargs))
    try:
        done, _ = await asyncio.wait(
            {task, asyncio.create_task(ready.wait())}, timeout=30, return_when=asyncio.FIRST_COMPLETED
        )
        if task in done:
            task.result()
            raise RuntimeError("the operator exited before it was ready")
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        runtime = memo.get("operator")
        if runtime is not None:  # cancelled at once, kopf's cleanup activity may not have run
            await runtime.close()


async def eventually(check: Any, timeout: float = 30.0, interval: float = 0.1) -> Any:
    """Poll `check()` until it returns a truthy value (or stops raising AssertionError); return it.
    Each check runs in a thread: its reads of the API server never hold up the operator in this loop."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: BaseException | None = None
    while True:
        try:
            result = await asyncio.to_thread(check)
            if result:
                return result
        except AssertionError as exc:
            last = exc
        if asyncio.get_running_loop().time() > deadline:
            if last is not None:
                raise last
            raise AssertionError(f"condition not met within {timeout}s: {check}")
        await asyncio.sleep(interval)
