"""The node half of the local cluster: containerd (Debian's, with its CRI plugin), the bridge CNI from
Debian's containernetworking-plugins, kubelet, kube-proxy, and the controller manager and scheduler.

Addresses exist only inside this machine: the node address is a /32 on the loopback device (the API
server, kubelet and NodePorts bind to it), pods get 10.244.0.0/24 on a bridge with no masquerading (they
reach nothing outside), Services 10.96.0.0/16.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from hack.cluster import pki, procs
from hack.cluster.controlplane import SERVICE_CIDR, ControlPlane

NODE_NAME = "queueworker-node"
NODE_IP = "10.250.0.1"
POD_CIDR = "10.244.0.0/24"
POD_GATEWAY = "10.244.0.1"
CLUSTER_CIDR = "10.244.0.0/16"
DNS_IP = "10.96.0.10"
BRIDGE = "qwbr0"
FORWARD_CHAIN = "QW-POD-FORWARD"
PAUSE_IMAGE = "queueworker.local/pause:local"
#: The label of this cluster's node: the e2e suite runs only where it (or kind) is found.
LOCAL_LABEL = "queueworker.dev/local-cluster"


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=check)


@dataclass
class Node:
    plane: ControlPlane
    containerd_root: Path  # kept across cluster-down: imported images survive

    @property
    def root(self) -> Path:
        return self.plane.root

    @property
    def socket(self) -> Path:
        return self.root / "containerd" / "containerd.sock"

    def kubeconfig_for(self, name: str, user: str, groups: tuple[str, ...] = ()) -> Path:
        ca = pki.ensure_ca(self.plane.pki_dir)
        pair = pki.issue(ca, self.plane.pki_dir, name, user, organizations=groups)
        return self.plane.write_kubeconfig(self.root / f"{name}.kubeconfig", user, pair)

    # -- host setup ---------------------------------------------------------------------------------

    def add_node_address(self) -> None:
        if NODE_IP not in sh("ip", "-4", "addr", "show", "dev", "lo").stdout:
            sh("ip", "addr", "add", f"{NODE_IP}/32", "dev", "lo")
        # Pod traffic on the bridge passes the FORWARD chain (bridge-nf-call-iptables), whose policy Docker
        # sets to DROP: pods may talk to pods; anything else they send through forwarding is dropped,
        # so nothing from a pod leaves this machine (the API server and DNS they reach are local).
        sh("iptables", "-N", FORWARD_CHAIN, check=False)
        sh("iptables", "-F", FORWARD_CHAIN)
        sh("iptables", "-A", FORWARD_CHAIN, "-i", BRIDGE, "-o", BRIDGE, "-j", "ACCEPT")
        sh("iptables", "-A", FORWARD_CHAIN, "-i", BRIDGE, "-j", "DROP")
        if sh("iptables", "-C", "FORWARD", "-j", FORWARD_CHAIN, check=False).returncode != 0:
            sh("iptables", "-I", "FORWARD", "1", "-j", FORWARD_CHAIN)
        for key, value in (("net/ipv4/ip_forward", "1"), ("net/bridge/bridge-nf-call-iptables", "1")):
            path = Path("/proc/sys") / key
            if path.exists() and path.read_text().strip() != value:
                path.write_text(value)

    def remove_node_address(self) -> None:
        sh("iptables", "-D", "FORWARD", "-j", FORWARD_CHAIN, check=False)
        sh("iptables", "-F", FORWARD_CHAIN, check=False)
        sh("iptables", "-X", FORWARD_CHAIN, check=False)
        sh("ip", "addr", "del", f"{NODE_IP}/32", "dev", "lo", check=False)
        sh("ip", "link", "del", BRIDGE, check=False)

    # -- containerd ---------------------------------------------------------------------------------

    def start_containerd(self) -> None:
        base = self.root / "containerd"
        base.mkdir(parents=True, exist_ok=True)
        cni_conf = self.root / "cni" / "net.d"
        cni_conf.mkdir(parents=True, exist_ok=True)
        (cni_conf / "10-queueworker.conflist").write_text(json.dumps(self.cni_config(), indent=2))
        config = base / "config.toml"
        config.write_text(f"""version = 2
root = "{self.containerd_root}"
state = "{base / "state"}"
[grpc]
  address = "{self.socket}"
[debug]
  level = "warn"
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  enable_selinux = false
  # These machines withhold CAP_SYS_RESOURCE: no process may go below its parent's oom_score_adj, so the
  # kubelet's -998 for sandboxes (and -997 for Guaranteed pods) is clamped to containerd's own score.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{cni_conf}"
""")
        procs.start(self.root, "containerd", ["containerd", f"--config={config}"])
        procs.wait(
            "containerd",
            lambda: self.ctr("version").returncode == 0,
            30,
            lambda: procs.log_tail(self.root, "containerd"),
        )

    def ctr(self, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            ["ctr", f"--address={self.socket}", "-n", "k8s.io", *args],
            input=stdin,
            capture_output=True,
            check=False,
        )

    def cni_config(self) -> dict[str, object]:
        return {
            "cniVersion": "0.4.0",
            "name": "queueworker-pods",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "dataDir": str(self.root / "cni" / "ipam"),
                        "ranges": [[{"subnet": POD_CIDR, "gateway": POD_GATEWAY}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        }

    # -- kubelet and kube-proxy ----------------------------------------------------------------------

    def start_kubelet(self) -> None:
        p = self.plane.pki_dir
        ca = pki.ensure_ca(p)
        serving = pki.issue(
            ca,
            p,
            "kubelet-serving",
            f"system:node:{NODE_NAME}",
            organizations=("system:nodes",),
            dns=(NODE_NAME,),
            ips=(NODE_IP,),
            server=True,
        )
        kubeconfig = self.kubeconfig_for("kubelet", f"system:node:{NODE_NAME}", ("system:nodes",))
        resolv = self.root / "resolv.conf"
        resolv.write_text("# pods resolve cluster names through CoreDNS only\nsearch cluster.local\n")
        root = self.root / "kubelet"
        config = self.root / "kubelet.yaml"
        config.write_text(
            json.dumps(
                {
                    "apiVersion": "kubelet.config.k8s.io/v1beta1",
                    "kind": "KubeletConfiguration",
                    "address": NODE_IP,
                    "port": 10250,
                    "healthzBindAddress": "127.0.0.1",
                    "healthzPort": 10248,
                    "readOnlyPort": 0,
                    "authentication": {
                        "anonymous": {"enabled": False},
                        "webhook": {"enabled": True},
                        "x509": {"clientCAFile": str(ca.cert)},
                    },
                    "authorization": {"mode": "Webhook"},
                    "tlsCertFile": str(serving.cert),
                    "tlsPrivateKeyFile": str(serving.key),
                    "cgroupDriver": "cgroupfs",
                    "failCgroupV1": False,
                    "failSwapOn": False,
                    "containerRuntimeEndpoint": f"unix://{self.socket}",
                    "clusterDNS": [DNS_IP],
                    "clusterDomain": "cluster.local",
                    "resolvConf": str(resolv),
                    "staticPodPath": "",
                    "serializeImagePulls": False,
                    # ConfigMap and Secret volumes follow their objects within seconds, not a minute: the
                    # Prometheus Operator's generated config and rules reach Prometheus quickly.
                    "syncFrequency": "10s",
                    "maxPods": 110,
                    "evictionHard": {
                        "memory.available": "100Mi",
                        "nodefs.available": "1%",
                        "imagefs.available": "1%",
                        "nodefs.inodesFree": "1%",
                    },
                    "imageGCHighThresholdPercent": 100,
                    "imageGCLowThresholdPercent": 99,
                    "oomScoreAdj": 0,
                    "protectKernelDefaults": False,
                    "rotateCertificates": False,
                    "serverTLSBootstrap": False,
                    "localStorageCapacityIsolation": True,
                    "enforceNodeAllocatable": ["pods"],
                },
                indent=2,
            )
        )
        procs.start(
            self.root,
            "kubelet",
            [
                str(self.plane.bin / "kubelet"),
                f"--config={config}",
                f"--kubeconfig={kubeconfig}",
                f"--root-dir={root}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={NODE_IP}",
                "--v=1",
                f"--node-labels={LOCAL_LABEL}=true",
            ],
        )

    def start_kube_proxy(self) -> None:
        kubeconfig = self.kubeconfig_for("kube-proxy", "system:kube-proxy")
        config = self.root / "kube-proxy.yaml"
        config.write_text(
            json.dumps(
                {
                    "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
                    "kind": "KubeProxyConfiguration",
                    "clientConnection": {"kubeconfig": str(kubeconfig)},
                    "mode": "iptables",
                    "clusterCIDR": CLUSTER_CIDR,
                    "hostnameOverride": NODE_NAME,
                    "bindAddress": NODE_IP,
                    "healthzBindAddress": "127.0.0.1:10256",
                    "metricsBindAddress": "127.0.0.1:10249",
                    "nodePortAddresses": [f"{NODE_IP}/32"],
                    "conntrack": {
                        "maxPerCore": 0,
                        "min": 0,
                        "tcpEstablishedTimeout": "0s",
                        "tcpCloseWaitTimeout": "0s",
                    },
                },
                indent=2,
            )
        )
        procs.start(self.root, "kube-proxy", [str(self.plane.bin / "kube-proxy"), f"--config={config}"])

    def start_network_policy(self) -> None:
        """kube-router's NetworkPolicy firewall alone (no routing, no service proxy, no CNI): iptables
        rules and ipsets on this machine that admit pod traffic only as the cluster's policies say."""
        kubeconfig = self.kubeconfig_for("kube-router", "system:kube-router")
        proc = procs.start(
            self.root,
            "kube-router",
            [
                str(self.plane.bin / "kube-router"),
                f"--kubeconfig={kubeconfig}",
                "--run-firewall=true",
                "--run-router=false",
                "--run-service-proxy=false",
                "--enable-cni=false",
                f"--hostname-override={NODE_NAME}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--health-port=0",
                "--iptables-sync-period=1m",
            ],
        )
        log = self.root / "logs" / "kube-router.log"

        def syncing() -> bool:  # it exits when its caches do not sync in a minute (missing RBAC, say)
            if proc.poll() is not None:
                raise RuntimeError(f"kube-router exited with {proc.returncode}")
            return "Starting network policy controller full sync" in log.read_text(errors="replace")

        procs.wait("kube-router's firewall", syncing, 90, lambda: procs.log_tail(self.root, "kube-router"))

    # -- controllers ---------------------------------------------------------------------------------

    def start_controllers(self) -> None:
        p = self.plane.pki_dir
        self._start_controller(
            "kube-controller-manager",
            10257,
            [
                f"--service-account-private-key-file={p / 'sa.key'}",
                f"--root-ca-file={p / 'ca.crt'}",
                f"--cluster-signing-cert-file={p / 'ca.crt'}",
                f"--cluster-signing-key-file={p / 'ca.key'}",
                "--use-service-account-credentials=true",
                "--allocate-node-cidrs=false",
                "--controllers=*,-cloud-node-lifecycle,-service-lb-controller,-node-route-controller",
            ],
        )
        self._start_controller("kube-scheduler", 10259, [])

    def _start_controller(self, name: str, port: int, extra: list[str]) -> None:
        """A control-plane component as user system:NAME, serving its health on loopback only."""
        kubeconfig = self.kubeconfig_for(name, f"system:{name}")
        procs.start(
            self.root,
            name,
            [
                str(self.plane.bin / name),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
                "--leader-elect=false",
                *extra,
            ],
        )

    def stop(self) -> None:
        procs.stop(self.root, ["kube-proxy", "kubelet", "kube-scheduler", "kube-controller-manager"])
        self.remove_pods()
        procs.stop(self.root, ["containerd"])

    def remove_pods(self) -> None:
        """Every container the kubelet left: killed and removed through containerd (shims outlive it)."""
        if not self.socket.exists():
            return
        tasks = self.ctr("tasks", "ls", "-q").stdout.decode().split()
        for task in tasks:
            self.ctr("tasks", "kill", "-s", "SIGKILL", task)
        for task in tasks:
            for _ in range(50):
                if self.ctr("tasks", "rm", "-f", task).returncode == 0:
                    break
                time.sleep(0.1)
        for container in self.ctr("containers", "ls", "-q").stdout.decode().split():
            self.ctr("containers", "rm", container)


def unmount_under(directory: Path) -> None:
    """Lazily unmount everything mounted below `directory` (pod volumes, netns, overlay rootfs)."""
    prefix = str(directory.resolve()) + "/"
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for target in sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", target], capture_output=True, check=False)
