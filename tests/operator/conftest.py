"""Fixtures for operator tests: the API emulator on a real port, a kubeconfig, and the real operator."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import kmock
import pytest

from hack.kube_emulator import Emulator, register_crd, write_kubeconfig
from tests.operator.harness import environment, running_operator
from tests.support.redis_server import free_port


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Emulator]:
    """An emulated API server with the QueueWorker CRD and the built-in resources."""
    async with Emulator() as emulator, kmock.Server(emulator):
        register_crd(emulator)
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", str(emulator.url).rstrip("/"))
        with environment({"KUBECONFIG": str(kubeconfig)}):
            yield emulator


@pytest.fixture
def operator_env(redis_url: str) -> dict[str, str]:
    """QUEUEWORKER_* settings for the operator under test (tests may change them before starting it)."""
    return {
        "QUEUEWORKER_REDIS_URL": redis_url,
        "QUEUEWORKER_AUTOSCALE_INTERVAL": "0.5",
        "QUEUEWORKER_DRIFT_INTERVAL": "3600",
        "QUEUEWORKER_METRICS_PORT": str(free_port()),
    }


@pytest.fixture
def start_operator(
    cluster: Emulator, operator_env: dict[str, str]
) -> Callable[..., AbstractAsyncContextManager[Any]]:
    """`async with start_operator(): ...` runs the operator against `cluster` with `operator_env`."""
    import contextlib

    @contextlib.asynccontextmanager
    async def start(namespaces: list[str] | None = None, memo: Any = None) -> AsyncIterator[Any]:
        with environment(operator_env):
            async with running_operator(namespaces, memo) as task:
                yield task

    return start
