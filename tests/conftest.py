"""Fixtures shared by the whole suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from hack.cluster import binaries
from tests.support import control_plane
from tests.support.kubeapi import Api
from tests.support.redis_server import RedisServer


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
def kube_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[control_plane.Server]:
    """The session's real API server (etcd, kube-apiserver, CRDs, garbage collector); started by the first
    test that needs it."""
    try:
        server = control_plane.start(tmp_path_factory.mktemp("kube"))
    except binaries.BuildError as exc:
        pytest.fail(f"the tests on a real API server need its binaries: {exc}")
    except (TimeoutError, RuntimeError) as exc:
        pytest.fail(f"kube-apiserver did not start: {exc}")
    try:
        yield server
    finally:
        control_plane.stop(server)


@pytest.fixture
def kube(kube_server: control_plane.Server, monkeypatch: pytest.MonkeyPatch) -> Api:
    """The API server's client; $KUBECONFIG names the server (as the admin) for the operator under test."""
    monkeypatch.setenv("KUBECONFIG", str(kube_server.kubeconfig))
    return kube_server.api


@pytest.fixture
def ns(kube_server: control_plane.Server, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace of the test's own, deleted after it (with its QueueWorkers, finalizers released)."""
    namespace = kube_server.namespace(request.node.name)
    yield namespace
    kube_server.drop_namespace(namespace)


@pytest.fixture
def other_ns(kube_server: control_plane.Server, request: pytest.FixtureRequest) -> Iterator[str]:
    """A second namespace of the test's own."""
    namespace = kube_server.namespace(request.node.name + "-b")
    yield namespace
    kube_server.drop_namespace(namespace)
