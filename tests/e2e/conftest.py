"""Fixtures of the e2e suite (kind, or the local cluster of `make cluster-up`). Without a reachable cluster
every test skips with the reason (printed, and listed by -ra); any other context is refused the same way.

The release is installed once for the session; modules run in the order of MODULES (the verdicts before
the install, the uninstall last), whatever order pytest was given them in."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hack import deploy
from tests.e2e.cluster import Cluster, Unavailable, connect, node_images, wait_for
from tests.support import tiers

NAMESPACE = "qw-e2e"
RELEASE = "qw-e2e"
MODULES = (
    "test_api_verdicts",
    "test_kind",
    "test_kubectl",
    "test_autoscaling",
    "test_modes",
    "test_beat",
    "test_monitoring",
    "test_network",
    "test_watch_recovery",
    "test_sentinel",
    "test_uninstall",
)


#: Figures the flows measured (reaction times, counts): printed at the end of the run, never asserted.
FIGURES: list[str] = []


def report(line: str) -> None:
    FIGURES.append(line)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("e2e figures")
        for line in FIGURES:
            terminalreporter.write_line(line)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    tiers.mark(items, Path(__file__).parent, "e2e")

    here = Path(__file__).parent

    def rank(item: pytest.Item) -> int:
        if not item.path.is_relative_to(here):
            return -1  # another tier's test (some share a module name: test_beat): its place stays
        name = item.path.stem
        return MODULES.index(name) if name in MODULES else len(MODULES)

    items.sort(key=rank)  # stable: the order within a module stays


@dataclass
class Release:
    cluster: Cluster
    namespace: str
    name: str
    tag: str

    @property
    def fullname(self) -> str:
        return f"{self.name}-queueworker" if "queueworker" not in self.name else self.name

    @property
    def redis_pod(self) -> str:
        return f"{self.fullname}-redis-0"

    @property
    def operator_user(self) -> str:
        """The identity the operator's requests carry: its ServiceAccount."""
        return f"system:serviceaccount:{self.namespace}:{self.fullname}-operator"

    def values(self, **extra: object) -> dict[str, object]:
        """What `make deploy` installs on this cluster (the local images; monitoring and KEDA where the
        cluster has them), with `extra` on top."""
        groups = deploy.api_groups(self.cluster.context) or set()
        base = deploy.platform_values(self.cluster.context, self.tag, groups)
        return deploy.merge(base, dict(extra))


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    try:
        return connect()
    except Unavailable as exc:
        print(f"\ne2e suite skipped: {exc}", file=sys.stderr)
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def release(cluster: Cluster) -> Iterator[Release]:
    """The chart installed in a namespace that enforces the restricted Pod Security Standard."""
    tag = os.environ.get("QW_E2E_IMAGE_TAG", "e2e")
    present = node_images(cluster)
    missing = [
        f"queueworker/{n}:{tag}" for n in ("operator", "worker") if f"queueworker/{n}:{tag}" not in present
    ]
    if missing:
        pytest.fail(
            f"images {missing} are not loaded into the kind nodes: run `make images IMAGE_TAG={tag}` "
            f"(or `make e2e`, which does it)"
        )
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    labels = {f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "audit", "warn")}
    try:
        cluster.core.create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE, labels=labels))
        )
    except ApiException as exc:
        if exc.status != 409:
            raise
    rel = Release(cluster=cluster, namespace=NAMESPACE, name=RELEASE, tag=tag)
    deploy.install_or_upgrade(cluster.context, NAMESPACE, RELEASE, rel.values())
    yield rel
    # Whatever the tests left: QueueWorkers first (their finalizers need the operator), then the release.
    try:
        for qw in cluster.custom.list_namespaced_custom_object(
            "queueworker.dev", "v1alpha1", NAMESPACE, "queueworkers"
        )["items"]:
            try:
                cluster.custom.delete_namespaced_custom_object(
                    "queueworker.dev", "v1alpha1", NAMESPACE, "queueworkers", qw["metadata"]["name"]
                )
            except ApiException as exc:  # a test's own cleanup deleted it a moment ago
                if exc.status != 404:
                    raise
        wait_for(
            "QueueWorkers to be deleted",
            lambda: (
                not cluster.custom.list_namespaced_custom_object(
                    "queueworker.dev", "v1alpha1", NAMESPACE, "queueworkers"
                )["items"]
            ),
            timeout=120,
        )
    finally:
        deploy.uninstall(cluster.context, NAMESPACE, RELEASE)
        try:
            cluster.core.delete_namespace(NAMESPACE)
        except ApiException as exc:
            if exc.status != 404:
                raise
