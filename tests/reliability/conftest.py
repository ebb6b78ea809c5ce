"""Fixtures of the reliability suite: a recorder Redis that no test faults, and the counting tasks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.reliability.support import write_counting_module
from tests.support.redis_server import RedisServer


@pytest.fixture(scope="session")
def recorder_server() -> Iterator[RedisServer]:
    """Where tasks record their runs: separate from the broker, so a broker fault cannot hide a run."""
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def recorder(recorder_server: RedisServer) -> Iterator[redis.Redis]:
    client = recorder_server.client()
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def counting_tasks(tmp_path: Path) -> Path:
    return write_counting_module(tmp_path / "tasks")
