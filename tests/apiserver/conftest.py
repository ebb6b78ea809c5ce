"""The real kube-apiserver (on etcd, both built from the Go module proxy by hack/k8s/build.sh) with the
chart's CRD installed: the judge of every manifest, and of how the CRD behaves for kubectl and the
operator. The session's server (tests/support/control_plane.py), shared with the operator tier."""

from __future__ import annotations

import pytest

from tests.support.control_plane import CHART_CRDS, ROOT, Server

__all__ = ["CHART_CRDS", "ROOT", "Server"]


@pytest.fixture(scope="package")
def apiserver(kube_server: Server) -> Server:
    return kube_server


@pytest.fixture(scope="package")
def crd_server(kube_server: Server) -> Server:
    """The server with the chart's CRD applied (as `helm install` does, from crds/) and Established."""
    return kube_server
