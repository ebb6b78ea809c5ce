"""The apiserver tier: the real kube-apiserver (on etcd, both built from the Go module proxy by
hack/k8s/build.sh: `make k8s-bin`) with the chart's CRD installed, one for the session
(tests/support/control_plane.py): the judge of every manifest, of how the CRD behaves for kubectl, and the
API server the real operator runs against (tests/apiserver/operator, and the reliability and security tests
that run it). Most of those need Redis too (tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from hack.cluster import binaries
from tests.support import control_plane, tiers
from tests.support.control_plane import CHART_CRDS, ROOT, Server
from tests.support.kubeapi import Api
from tests.support.operator_harness import environment, operator_settings, running_operator

__all__ = ["CHART_CRDS", "ROOT", "Server"]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    tiers.mark(items, Path(__file__).parent, "apiserver")


@pytest.fixture(scope="session")
def kube_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
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
def kube(kube_server: Server, monkeypatch: pytest.MonkeyPatch) -> Api:
    """The API server's client; $KUBECONFIG names the server (as the admin) for the operator under test."""
    monkeypatch.setenv("KUBECONFIG", str(kube_server.kubeconfig))
    return kube_server.api


@pytest.fixture
def ns(kube_server: Server, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace of the test's own, deleted after it (with its QueueWorkers, finalizers released)."""
    namespace = kube_server.namespace(request.node.name)
    yield namespace
    kube_server.drop_namespace(namespace)


@pytest.fixture
def other_ns(kube_server: Server, request: pytest.FixtureRequest) -> Iterator[str]:
    """A second namespace of the test's own."""
    namespace = kube_server.namespace(request.node.name + "-b")
    yield namespace
    kube_server.drop_namespace(namespace)


@pytest.fixture(scope="package")
def apiserver(kube_server: Server) -> Server:
    return kube_server


@pytest.fixture(scope="package")
def crd_server(kube_server: Server) -> Server:
    """The server with the chart's CRD applied (as `helm install` does, from crds/) and Established."""
    return kube_server


@pytest.fixture
def operator_env(redis_url: str) -> dict[str, str]:
    """QUEUEWORKER_* settings for the operator under test (tests may change them before starting it)."""
    return operator_settings(redis_url, autoscale_interval="0.5")


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
