"""A real single-node Kubernetes cluster on this machine, from binaries built here (run as root):

    python -m hack.cluster up       etcd, kube-apiserver, controller manager, scheduler, containerd,
                                    kubelet, kube-proxy, CoreDNS, kube-router's NetworkPolicy firewall,
                                    local volumes; images built and loaded
    python -m hack.cluster images   (re)build the images and load them into the node's containerd
    python -m hack.cluster down     stop everything and remove the cluster's state (images stay cached)
    python -m hack.cluster env      print `export KUBECONFIG=...`

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

from hack.cluster import addons, binaries, procs
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
#: Every request's metadata (who, verb, resource, response code) goes to <state>/audit.log, so the e2e
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
    state, containerd_root = paths()
    audit = (
        f"--audit-policy-file={state / 'audit-policy.json'}",
        f"--audit-log-path={state / 'audit.log'}",
        "--audit-log-maxsize=200",
        "--audit-log-maxbackup=1",
    )
    plane = ControlPlane(state, bin_dir, host=NODE_IP, port=API_PORT, etcd_port=2379, extra_args=audit)
    return plane, Node(plane, containerd_root)


def kubectl(plane: ControlPlane, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(plane.bin / "kubectl"), f"--kubeconfig={plane.kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )


def build_images(tag: str) -> list[str]:
    out = subprocess.run(
        ["bash", str(ROOT / "hack" / "images" / "build.sh"), tag],
        stdout=subprocess.PIPE,
        stderr=sys.stderr,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"hack/images/build.sh failed (exit {out.returncode})")
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
        lambda: "\n".join(f"--- {n}:\n{procs.log_tail(plane.state, n)}" for n in ("kubelet", "containerd")),
    )


def apply(plane: ControlPlane, objects: list[dict[str, object]]) -> None:
    text = "\n".join(json.dumps(o) for o in objects)
    out = kubectl(
        plane, "apply", "--server-side", "--field-manager=queueworker-cluster", "-f", "-", stdin=text
    )
    if out.returncode != 0:
        raise SystemExit(f"applying the cluster add-ons failed:\n{out.stderr}")


def up(tag: str) -> int:
    if os.geteuid() != 0:
        print("the local cluster runs kubelet and containerd: run it as root", file=sys.stderr)
        return 2
    start = time.monotonic()
    plane, node = make(binaries.ensure(*BINARIES))
    pid_files = list((plane.state / "pids").glob("*")) if (plane.state / "pids").is_dir() else []
    if any(procs.alive(int(f.read_text())) for f in pid_files):
        print(f"a cluster is already up (state in {plane.state}); `make cluster-down` first", file=sys.stderr)
        return 1
    if plane.state.exists():  # what a killed cluster left (mounts, addresses, rules, state)
        down()
    refs = build_images(tag)
    node.add_node_address()
    plane.state.mkdir(parents=True, exist_ok=True)
    (plane.state / "audit-policy.json").write_text(json.dumps(AUDIT_POLICY))
    plane.start()
    node.start_controllers()
    node.start_containerd()
    load_images(node, refs)
    node.start_kubelet()
    node.start_kube_proxy()
    wait_node_ready(plane, 120)
    apply(plane, addons.storage(plane.state / "volumes"))
    apply(plane, addons.coredns())
    apply(plane, addons.network_policy())
    node.start_network_policy()
    out = kubectl(plane, "-n", "kube-system", "rollout", "status", "deployment/coredns", "--timeout=120s")
    if out.returncode != 0:
        print(out.stdout + out.stderr, file=sys.stderr)
        return 1
    print(
        f"cluster up in {time.monotonic() - start:.0f} s: node {NODE_NAME} at {plane.server}", file=sys.stderr
    )
    print(f"export KUBECONFIG={plane.kubeconfig}")
    return 0


def images(tag: str) -> int:
    _, node = make(binaries.ensure(*BINARIES))
    refs = build_images(tag)
    if node.socket.exists():
        load_images(node, refs)
    print("\n".join(refs))
    return 0


def down() -> int:
    state, _ = paths()
    bin_dir = binaries.cache_dir() / f"k8s-{binaries.release()}" / "bin"
    _, node = make(bin_dir)
    procs.stop(state, ["kube-router", "kube-proxy", "kubelet", "kube-scheduler", "kube-controller-manager"])
    node.remove_pods()
    procs.stop(state, ["containerd", "kube-apiserver", "etcd"])
    if (bin_dir / "kube-proxy").exists():
        subprocess.run([str(bin_dir / "kube-proxy"), "--cleanup"], capture_output=True, check=False)
    if (bin_dir / "kube-router").exists():  # its iptables chains and ipsets
        subprocess.run([str(bin_dir / "kube-router"), "--cleanup-config"], capture_output=True, check=False)
    if state.exists():
        unmount_under(state)
        shutil.rmtree(state, ignore_errors=True)
    node.remove_node_address()
    print("cluster down", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hack.cluster", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down", "images", "env"])
    parser.add_argument(
        "--tag", default=os.environ.get("IMAGE_TAG", "dev"), help="tag of the project's images"
    )
    args = parser.parse_args(argv)
    if args.command == "up":
        return up(args.tag)
    if args.command == "images":
        return images(args.tag)
    if args.command == "down":
        return down()
    print(f"export KUBECONFIG={paths()[0] / 'kubeconfig'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
