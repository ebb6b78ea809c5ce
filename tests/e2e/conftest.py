"""Fixtures of the kind e2e suite. Without a reachable kind cluster every test skips with the reason
(printed, and listed by -ra); a context that is not kind is refused the same way, never used."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.e2e import deploy
from tests.e2e.cluster import LOCAL_CONTEXT, Cluster, Unavailable, connect, node_images, wait_for

NAMESPACE = "qw-e2e"
RELEASE = "qw-e2e"


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

    def values(self, **extra: object) -> dict[str, object]:
        if self.cluster.context == LOCAL_CONTEXT:  # no registry: Redis is the image hack/images built
            extra = deploy.merge(deploy.LOCAL_REDIS, dict(extra))
        return deploy.kind_values(self.tag, pull_policy="Never", extra=dict(extra))


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    try:
        return connect()
    except Unavailable as exc:
        print(f"\ne2e suite skipped: {exc}", file=sys.stderr)
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
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
            cluster.custom.delete_namespaced_custom_object(
                "queueworker.dev", "v1alpha1", NAMESPACE, "queueworkers", qw["metadata"]["name"]
            )
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
