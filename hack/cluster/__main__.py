"""A real single-node Kubernetes cluster on this machine, from binaries built here (run as root):

    python -m hack.cluster up       etcd, kube-apiserver, controller manager, scheduler, containerd,
                                    kubelet, kube-proxy, CoreDNS, kube-router's NetworkPolicy firewall,
                                    local volumes; images built and loaded; then the add-ons (KEDA, the
                                    Prometheus Operator and its Prometheus, prometheus-adapter,
                                    metrics-server: hack.cluster.ecosystem), unless --no-addons
    python -m hack.cluster external-metrics keda|adapter
                                    which add-on serves external.metrics.k8s.io (one per cluster)
    python -m hack.cluster restart-apiserver
                                    stop kube-apiserver and start it again (the e2e suite's watch test)
    python -m hack.cluster images   (re)build the images and load them into the node's containerd
    python -m hack.cluster down     stop everything and remove the cluster's state (images stay cached)
    python -m hack.cluster env      print the exports of KUBECONFIG and of a PATH with kubectl and helm

State: ${QW_CACHE:-~/.cache/queueworker}/cluster; the kubeconfig is cluster/kubeconfig there.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from hack.cluster import addons, binaries, ecosystem, procs
from hack.cluster.client import apply, kubectl
from hack.cluster.controlplane import ControlPlane
from hack.cluster.node import NODE_IP, NODE_NAME, Node, unmount_under

ROOT = Path(__file__).resolve().parents[2]
BINARIES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "kubectl",
    "pause",
    "coredns",
    "kube-router",
)
API_PORT = 6443
#: Every request's metadata (who, verb, resource, response code) goes to <root>/audit.log, so the e2e
#: suite can show that the operator made no call its RBAC refused. Lease renewals are left out.
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        {"level": "None", "resources": [{"group": "coordination.k8s.io", "resources": ["leases"]}]},
        {"level": "Metadata"},
    ],
}


def paths() -> tuple[Path, Path]:
    cache = binaries.cache_dir()
    return cache / "cluster", cache / "containerd"


def make(bin_dir: Path) -> tuple[ControlPlane, Node]:
    root, containerd_root = paths()
    audit = (
        f"--audit-policy-file={root / 'audit-policy.json'}",
        f"--audit-log-path={root / 'audit.log'}",
        "--audit-log-maxsize=200",
        "--audit-log-maxbackup=1",
    )
    plane = ControlPlane(root, bin_dir, host=NODE_IP, port=API_PORT, etcd_port=2379, extra_args=audit)
    return plane, Node(plane, containerd_root)


def build_images(tag: str, addons: bool = False) -> list[str]:
    refs = _run_images(["bash", str(ROOT / "hack" / "images" / "build.sh"), tag])
    if addons:
        refs += _run_images(["bash", str(ROOT / ecosystem.IMAGES_SCRIPT)])
    return refs


def _run_images(command: list[str]) -> list[str]:
    out = subprocess.run(
        command,
        stdout=subprocess.PIPE,
        stderr=sys.stderr,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(command[1:2])} failed (exit {out.returncode})")
    return out.stdout.split()


def load_images(node: Node, refs: list[str]) -> None:
    """`docker save | ctr import` for each image whose Docker id the node has not loaded yet."""
    stamps = node.containerd_root.parent / "containerd-loaded"
    stamps.mkdir(parents=True, exist_ok=True)
    for ref in refs:
        image_id = subprocess.run(
            ["docker", "image", "inspect", "-f", "{{.Id}}", ref], capture_output=True, text=True, check=True
        ).stdout.strip()
        stamp = stamps / ref.replace("/", "_").replace(":", "_")
        present = node.ctr("images", "ls", "-q").stdout.decode().split()
        if stamp.exists() and stamp.read_text() == image_id and any(ref in p for p in present):
            continue
        saved = subprocess.run(["docker", "save", ref], capture_output=True, check=True).stdout
        result = node.ctr("images", "import", "--no-unpack=false", "-", stdin=saved)
        if result.returncode != 0:
            raise SystemExit(f"loading {ref} into containerd failed: {result.stderr.decode()}")
        stamp.write_text(image_id)
        print(f"loaded {ref}", file=sys.stderr)


def wait_node_ready(plane: ControlPlane, timeout: float) -> None:
    def ready() -> bool:
        out = kubectl(plane, "get", "node", NODE_NAME, "-o", "json")
        if out.returncode != 0:
            return False
        conds = {c["type"]: c["status"] for c in json.loads(out.stdout)["status"].get("conditions", [])}
        return conds.get("Ready") == "True"

    procs.wait(
        f"node {NODE_NAME} Ready",
        ready,
        timeout,
        lambda: "\n".join(f"--- {n}:\n{procs.log_tail(plane.root, n)}" for n in ("kubelet", "containerd")),
    )


def up(tag: str, with_addons: bool = True) -> int:
    if os.geteuid() != 0:
        print("the local cluster runs kubelet and containerd: run it as root", file=sys.stderr)
        return 2
    start = time.monotonic()
    plane, node = make(binaries.ensure(*BINARIES))
    pid_files = list((plane.root / "pids").glob("*")) if (plane.root / "pids").is_dir() else []
    if any(procs.alive(int(f.read_text())) for f in pid_files):
        print(f"a cluster is already up (in {plane.root}); `make cluster-down` first", file=sys.stderr)
        return 1
    if plane.root.exists():  # what a killed cluster left (mounts, addresses, rules, files)
        down()
    refs = build_images(tag, addons=with_addons)
    node.add_node_address()
    plane.root.mkdir(parents=True, exist_ok=True)
    (plane.root / "audit-policy.json").write_text(json.dumps(AUDIT_POLICY))
    plane.start()
    node.start_controllers()
    node.start_containerd()
    load_images(node, refs)
    node.start_kubelet()
    node.start_kube_proxy()
    wait_node_ready(plane, 120)
    apply(plane, addons.storage(plane.root / "volumes"))
    apply(plane, addons.coredns())
    apply(plane, addons.network_policy())
    node.start_network_policy()
    out = kubectl(plane, "-n", "kube-system", "rollout", "status", "deployment/coredns", "--timeout=120s")
    if out.returncode != 0:
        print(out.stdout + out.stderr, file=sys.stderr)
        return 1
    if with_addons:
        ecosystem.install(plane)
    print(
        f"cluster up in {time.monotonic() - start:.0f} s: node {NODE_NAME} at {plane.server}", file=sys.stderr
    )
    print(f"export KUBECONFIG={plane.kubeconfig}")
    return 0


def images(tag: str) -> int:
    _, node = make(binaries.ensure(*BINARIES))
    refs = build_images(tag, addons=False)
    if node.socket.exists():
        load_images(node, refs)
    print("\n".join(refs))
    return 0


def down() -> int:
    root, _ = paths()
    bin_dir = binaries.cache_dir() / f"k8s-{binaries.release()}" / "bin"
    _, node = make(bin_dir)
    procs.stop(root, ["kube-router", "kube-proxy", "kubelet", "kube-scheduler", "kube-controller-manager"])
    node.remove_pods()
    procs.stop(root, ["containerd", "kube-apiserver", "etcd"])
    if (bin_dir / "kube-proxy").exists():
        subprocess.run([str(bin_dir / "kube-proxy"), "--cleanup"], capture_output=True, check=False)
    if (bin_dir / "kube-router").exists():  # its iptables chains and ipsets
        subprocess.run([str(bin_dir / "kube-router"), "--cleanup-config"], capture_output=True, check=False)
    if root.exists():
        unmount_under(root)
        shutil.rmtree(root, ignore_errors=True)
    node.remove_node_address()
    print("cluster down", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hack.cluster", description=__doc__.splitlines()[0])
    parser.add_argument(
        "command", choices=["up", "down", "images", "env", "external-metrics", "restart-apiserver"]
    )
    parser.add_argument("provider", nargs="?", choices=["keda", "adapter"], help="with external-metrics")
    parser.add_argument(
        "--no-addons",
        action="store_true",
        help="up: a quick cluster without KEDA, the Prometheus Operator, the adapter and metrics-server",
    )
    parser.add_argument(
        "--tag", default=os.environ.get("IMAGE_TAG", "dev"), help="tag of the project's images"
    )
    args = parser.parse_args(argv)
    if args.command == "up":
        return up(args.tag, with_addons=not args.no_addons)
    if args.command == "external-metrics":
        if args.provider is None:
            parser.error("external-metrics takes keda or adapter")
        plane, _ = make(binaries.cache_dir() / f"k8s-{binaries.release()}" / "bin")
        ecosystem.external_metrics(plane, args.provider)
        return 0
    if args.command == "restart-apiserver":  # what the e2e suite does to prove that watches recover
        plane, _ = make(binaries.cache_dir() / f"k8s-{binaries.release()}" / "bin")
        print(
            f"kube-apiserver restarted: ready again after {plane.restart_apiserver():.1f} s", file=sys.stderr
        )
        return 0
    if args.command == "images":
        return images(args.tag)
    if args.command == "down":
        return down()
    k8s_bin = binaries.cache_dir() / f"k8s-{binaries.release()}" / "bin"
    addons_bin = binaries.cache_dir() / "addons" / "bin"
    print(f"export KUBECONFIG={paths()[0] / 'kubeconfig'}")
    print(f'export PATH="{k8s_bin}:{addons_bin}:$PATH"  # kubectl, helm (make tools builds them)')
    return 0


if __name__ == "__main__":
    sys.exit(main())
