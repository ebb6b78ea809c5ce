"""Fixtures for operator tests: the real operator run in the test's event loop against the session's
real API server (tests/conftest.py: `kube`, a namespace per test `ns`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest

from tests.operator.harness import environment, running_operator
from tests.support.kubeapi import Api
from tests.support.redis_server import free_port


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
    kube: Api, ns: str, operator_env: dict[str, str]
) -> Callable[..., AbstractAsyncContextManager[Any]]:
    """`async with start_operator(): ...` runs the operator on the test's namespace with `operator_env`
    (`namespaces=None`: the whole cluster)."""

    @asynccontextmanager
    async def start(namespaces: list[str] | str | None = "own", memo: Any = None) -> AsyncIterator[Any]:
        chosen = [ns] if namespaces == "own" else namespaces
        with environment(operator_env):
            async with running_operator(chosen if isinstance(chosen, list) else None, memo) as task:
                yield task

    return start
