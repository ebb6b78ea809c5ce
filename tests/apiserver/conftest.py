"""A real kube-apiserver (on etcd, both built from the Go module proxy by hack/k8s/build.sh) with the
chart's CRD installed: the judge of every manifest, and of how the CRD behaves for kubectl and the
operator. No core controllers and no nodes: what needs those runs on the whole cluster (tests/e2e).
Package-scoped: the server stops once these tests are done, so it loads nothing the later (timing-
sensitive) tiers run beside."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hack.cluster import binaries
from hack.cluster.controlplane import ControlPlane

ROOT = Path(__file__).resolve().parents[2]
CHART_CRDS = ROOT / "charts" / "queueworker" / "crds"


@dataclass
class Server:
    plane: ControlPlane
    bin: Path

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.bin / "kubectl"), f"--kubeconfig={self.plane.kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def get(self, *args: str) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(self.kubectl("get", "-o", "json", *args, check=True).stdout)
        return out


@pytest.fixture(scope="package")
def apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    try:
        bin_dir = binaries.ensure("etcd", "kube-apiserver", "kubectl", "yaml2json")
    except binaries.BuildError as exc:
        pytest.fail(f"the real API server tier needs its binaries: {exc}")
    plane = ControlPlane(tmp_path_factory.mktemp("apiserver"), bin_dir)
    try:
        plane.start()
    except (TimeoutError, RuntimeError) as exc:
        plane.stop()
        pytest.fail(f"kube-apiserver did not start: {exc}")
    try:
        yield Server(plane, bin_dir)
    finally:
        plane.stop()


@pytest.fixture(scope="package")
def crd_server(apiserver: Server) -> Server:
    """The server with the chart's CRD applied (as `helm install` does, from crds/) and Established."""
    apiserver.kubectl("apply", "--server-side", "-f", str(CHART_CRDS), check=True)
    apiserver.kubectl(
        "wait", "--for=condition=Established", "--timeout=30s", "crd/queueworkers.queueworker.dev", check=True
    )
    return apiserver
