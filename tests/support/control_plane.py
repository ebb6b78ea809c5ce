"""The real control plane the tests run on: etcd and kube-apiserver (hack/cluster/controlplane.py, binaries
built by hack/k8s/build.sh), the chart's CRD and KEDA's ScaledObject resource installed, and
kube-controller-manager running the garbage collector and the namespace controller (deletion cascades,
namespaces go). No nodes and no scheduler: what needs those runs on the whole cluster (tests/e2e).

One server serves the whole session; each test that writes takes a namespace of its own.

`python -m tests.support.control_plane [STATE_DIR]` runs the same for a person (until Ctrl-C) and prints
the kubeconfig to use: the operator and kubectl work against it without a cluster.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hack.cluster import binaries, procs
from hack.cluster.controlplane import ControlPlane
from tests.support.kubeapi import NAMESPACES, QW, Api
from tests.support.kubectl import kubectl

ROOT = Path(__file__).resolve().parents[2]
CHART_CRDS = ROOT / "charts" / "queueworker" / "crds"
BINARIES = ("etcd", "kube-apiserver", "kubectl", "yaml2json", "kube-controller-manager")
#: The controllers every test may rely on; others are started by the test that needs them (`controllers`).
BASE_CONTROLLERS = ("garbage-collector-controller", "namespace-controller")

#: KEDA's ScaledObject as a resource the operator can apply and delete (KEDA itself is not installed).
SCALEDOBJECT_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "scaledobjects.keda.sh"},
    "spec": {
        "group": "keda.sh",
        "scope": "Namespaced",
        "names": {"kind": "ScaledObject", "plural": "scaledobjects", "singular": "scaledobject"},
        "versions": [
            {
                "name": "v1alpha1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                },
            }
        ],
    },
}


@dataclass
class Server:
    plane: ControlPlane
    bin: Path
    api: Api = field(init=False)

    def __post_init__(self) -> None:
        pki = self.plane.pki_dir
        self.api = Api(self.plane.server, pki / "ca.crt", pki / "admin.crt", pki / "admin.key")

    @property
    def kubeconfig(self) -> Path:
        return self.plane.kubeconfig

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        return kubectl(
            self.bin / "kubectl", f"--kubeconfig={self.plane.kubeconfig}", *args, stdin=stdin, check=check
        )

    def get(self, *args: str) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(self.kubectl("get", "-o", "json", *args, check=True).stdout)
        return out

    def start_controllers(self, name: str, controllers: tuple[str, ...]) -> None:
        """kube-controller-manager (as the admin) running only `controllers`; its log is logs/NAME.log."""
        p = self.plane.pki_dir
        procs.start(
            self.plane.root,
            name,
            [
                str(self.bin / "kube-controller-manager"),
                f"--kubeconfig={self.plane.kubeconfig}",
                f"--controllers={','.join(controllers)}",
                f"--root-ca-file={p / 'ca.crt'}",
                f"--service-account-private-key-file={p / 'sa.key'}",
                "--leader-elect=false",
                "--secure-port=0",
                "--concurrent-gc-syncs=5",
            ],
        )

    def stop_controllers(self, name: str) -> None:
        procs.stop(self.plane.root, [name])

    @contextlib.contextmanager
    def controllers(self, *names: str) -> Iterator[None]:
        """More controllers (say deployment-controller and replicaset-controller) for one test."""
        tag = "kcm-" + "-".join(n.split("-")[0] for n in names)
        self.start_controllers(tag, names)
        try:
            yield
        finally:
            self.stop_controllers(tag)

    def namespace(self, hint: str) -> str:
        """A new namespace named after `hint` (a test's name), unique in the session."""
        base = re.sub(r"[^a-z0-9-]+", "-", hint.lower()).strip("-")[:40].strip("-") or "t"
        existing = {n["metadata"]["name"] for n in self.api.live(NAMESPACES)}
        name, i = base, 1
        while name in existing:
            i += 1
            name = f"{base}-{i}"
        self.api.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        # Pods need their ServiceAccount (admission); no controller here makes the default one.
        account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}
        self.api.call("POST", f"/api/v1/namespaces/{name}/serviceaccounts", account)
        return name

    def drop_namespace(self, namespace: str) -> None:
        """Delete the namespace; its QueueWorkers go at once (finalizers released: no operator runs now)."""
        for qw in self.api.live(QW, namespace):
            name = qw["metadata"]["name"]
            self.api.patch(QW, namespace, name, {"metadata": {"finalizers": None}})
            self.api.delete(QW, namespace, name)
        self.api.delete(NAMESPACES, None, namespace)


def start(root: Path) -> Server:
    """etcd, kube-apiserver, the CRDs and the base controllers; raises binaries.BuildError, RuntimeError
    or TimeoutError with the reason."""
    bin_dir = binaries.ensure(*BINARIES)
    plane = ControlPlane(root, bin_dir)
    try:
        plane.start()
    except (TimeoutError, RuntimeError):
        plane.stop()
        raise
    server = Server(plane, bin_dir)
    server.kubectl("apply", "--server-side", "-f", str(CHART_CRDS), check=True)
    server.kubectl("apply", "--server-side", "-f", "-", stdin=json.dumps(SCALEDOBJECT_CRD), check=True)
    server.start_controllers("kube-controller-manager", BASE_CONTROLLERS)
    server.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=30s",
        "crd/queueworkers.queueworker.dev",
        "crd/scaledobjects.keda.sh",
        check=True,
    )
    return server


def stop(server: Server) -> None:
    server.stop_controllers("kube-controller-manager")
    server.plane.stop()


def main(argv: list[str]) -> int:
    root = Path(argv[0]) if argv else Path(tempfile.mkdtemp(prefix="qw-apiserver-"))
    server = start(root)
    print(f"export KUBECONFIG={server.kubeconfig}", flush=True)
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        stop(server)
    return 0


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    sys.exit(main(sys.argv[1:]))
