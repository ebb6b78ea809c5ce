"""Fixtures shared by the tiers that run Redis (tests/redis and tests/apiserver): the session's private
redis-server, and the reliability suite's recorder. The API server's fixtures are in
tests/apiserver/conftest.py; the tiers are in tests/README.md."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.redis_server import RedisServer
from tests.support.reliability import write_counting_module


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One private redis-server for the session (never the shared one on 6379)."""
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """URL of the private server's db 0, flushed before each test."""
    redis_server.client().flushall()
    return redis_server.url


@pytest.fixture
def redis_client(redis_server: RedisServer, redis_url: str) -> Iterator[redis.Redis]:
    client = redis_server.client()
    yield client
    client.close()


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
