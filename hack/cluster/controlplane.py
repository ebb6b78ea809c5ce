"""etcd and a real kube-apiserver on loopback: the API server alone judges CRDs and custom objects
(structural schema, defaulting, CEL, subresources, OpenAPI for kubectl); the node components of
`hack.cluster.node` make a whole cluster of it.

The API server is configured as a real one: client-certificate auth with the admin in system:masters,
ServiceAccount tokens signed by a key of ours, `--authorization-mode=Node,RBAC`, Pod Security
Admission (on by default) and the default admission chain.
"""

from __future__ import annotations

import ssl
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from hack.cluster import pki, procs

SERVICE_CIDR = "10.96.0.0/16"
KUBERNETES_SERVICE_IP = "10.96.0.1"


@dataclass
class ControlPlane:
    root: Path
    bin: Path
    host: str = "127.0.0.1"
    port: int = 0
    etcd_port: int = 0
    extra_args: tuple[str, ...] = ()
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def pki_dir(self) -> Path:
        return self.root / "pki"

    @property
    def front_proxy_dir(self) -> Path:
        return self.pki_dir / "front-proxy"

    @property
    def server(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    def make_pki(self) -> None:
        ca = pki.ensure_ca(self.pki_dir)
        names = (
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
            "localhost",
        )
        pki.issue(
            ca,
            self.pki_dir,
            "apiserver",
            "kube-apiserver",
            dns=names,
            ips=("127.0.0.1", self.host, KUBERNETES_SERVICE_IP),
            server=True,
        )
        pki.issue(ca, self.pki_dir, "admin", "queueworker-admin", organizations=("system:masters",))
        pki.issue(
            ca,
            self.pki_dir,
            "apiserver-kubelet-client",
            "kube-apiserver-kubelet-client",
            organizations=("system:masters",),
        )
        pki.ensure_signing_key(self.pki_dir)
        # The aggregation layer: the API server proxies to extension API servers (KEDA's and the
        # adapter's External metrics, metrics-server) as this client, which they trust via
        # kube-system/extension-apiserver-authentication.
        front = pki.ensure_ca(self.front_proxy_dir, "queueworker-local-front-proxy-ca")
        pki.issue(front, self.front_proxy_dir, "front-proxy-client", "front-proxy-client")

    def write_kubeconfig(
        self, path: Path, user: str, cert: pki.Pair, context: str = "queueworker-local"
    ) -> Path:
        ca = self.pki_dir / "ca.crt"
        text = f"""apiVersion: v1
kind: Config
clusters:
- name: {context}
  cluster: {{server: "{self.server}", certificate-authority: "{ca}"}}
users:
- name: {user}
  user: {{client-certificate: "{cert.cert}", client-key: "{cert.key}"}}
contexts:
- name: {context}
  context: {{cluster: {context}, user: {user}}}
current-context: {context}
"""
        path.write_text(text)
        path.chmod(0o600)
        return path

    def start(self, timeout: float = 90.0) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = self.port or procs.free_port(self.host)
        self.etcd_port = self.etcd_port or procs.free_port()
        self.make_pki()
        admin = pki.Pair(self.pki_dir / "admin.crt", self.pki_dir / "admin.key")
        self.write_kubeconfig(self.kubeconfig, "admin", admin)
        peer = procs.free_port()
        data = self.root / "etcd"
        self.procs["etcd"] = procs.start(
            self.root,
            "etcd",
            [
                str(self.bin / "etcd"),
                "--name=local",
                f"--data-dir={data}",
                f"--listen-client-urls=http://127.0.0.1:{self.etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{self.etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=local=http://127.0.0.1:{peer}",
                "--unsafe-no-fsync",
                "--log-level=warn",
                "--quota-backend-bytes=2147483648",
            ],
        )
        p, fp = self.pki_dir, self.front_proxy_dir
        self.procs["kube-apiserver"] = procs.start(
            self.root,
            "kube-apiserver",
            [
                str(self.bin / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
                f"--bind-address={self.host}",
                f"--advertise-address={self.host}",
                f"--secure-port={self.port}",
                f"--tls-cert-file={p / 'apiserver.crt'}",
                f"--tls-private-key-file={p / 'apiserver.key'}",
                f"--client-ca-file={p / 'ca.crt'}",
                f"--kubelet-client-certificate={p / 'apiserver-kubelet-client.crt'}",
                f"--kubelet-client-key={p / 'apiserver-kubelet-client.key'}",
                f"--service-account-key-file={p / 'sa.pub'}",
                f"--service-account-signing-key-file={p / 'sa.key'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction",
                "--kubelet-preferred-address-types=InternalIP,Hostname",
                "--allow-privileged=true",
                "--profiling=false",
                "--event-ttl=1h",
                f"--requestheader-client-ca-file={fp / 'ca.crt'}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                f"--proxy-client-cert-file={fp / 'front-proxy-client.crt'}",
                f"--proxy-client-key-file={fp / 'front-proxy-client.key'}",
                # To an extension API server's endpoints, not its Service IP: no kube-proxy in between.
                "--enable-aggregator-routing=true",
                *self.extra_args,
            ],
        )
        procs.wait("etcd and kube-apiserver", self.ready, timeout, self.diagnose)

    def restart_apiserver(self, timeout: float = 90.0) -> float:
        """Stop kube-apiserver and start it again as it was (etcd keeps running); the seconds until it
        answers /readyz again."""
        started = time.monotonic()
        self.procs["kube-apiserver"] = procs.restart(self.root, "kube-apiserver")
        procs.wait("kube-apiserver", self.ready, timeout, self.diagnose)
        return time.monotonic() - started

    def _context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki_dir / "ca.crt"))
        ctx.load_cert_chain(str(self.pki_dir / "admin.crt"), str(self.pki_dir / "admin.key"))
        return ctx

    def get(self, path: str, timeout: float = 5.0) -> bytes:
        with urllib.request.urlopen(self.server + path, context=self._context(), timeout=timeout) as resp:  # noqa: S310
            body: bytes = resp.read()
            return body

    def ready(self) -> bool:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}\n{procs.log_tail(self.root, name)}")
        return self.get("/readyz") == b"ok"

    def diagnose(self) -> str:
        return "\n".join(f"--- {n} log:\n{procs.log_tail(self.root, n)}" for n in ("etcd", "kube-apiserver"))

    def stop(self) -> None:
        procs.stop(self.root, ["kube-apiserver", "etcd"])
        self.procs.clear()
