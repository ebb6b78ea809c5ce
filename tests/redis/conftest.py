"""The redis tier: real redis-server (and Sentinel) processes, real celery workers, beats, exporters and
Prometheus, each test session on its own private servers (tests/support/redis_server.py). No API server.
The fixtures (`redis_server`, `redis_url`, `redis_client`, the reliability suite's `recorder`) are in
tests/conftest.py: the apiserver tier uses them too."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import tiers


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    tiers.mark(items, Path(__file__).parent, "redis")
