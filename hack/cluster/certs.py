"""The serving certificates of the local cluster's add-ons, from a CA of their own (not the cluster CA,
which signs the API server's client identities): the API server verifies the extension API servers and
webhooks against it through each APIService's and webhook's caBundle."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hack.cluster import pki


def service_names(name: str, namespace: str) -> tuple[str, ...]:
    return (name, f"{name}.{namespace}", f"{name}.{namespace}.svc", f"{name}.{namespace}.svc.cluster.local")


@dataclass(frozen=True)
class Certs:
    ca: pki.Pair
    keda: pki.Pair
    adapter: pki.Pair
    metrics_server: pki.Pair

    @classmethod
    def ensure(cls, directory: Path) -> Certs:
        ca = pki.ensure_ca(directory, "queueworker-local-addons-ca")
        keda_names = tuple(
            n
            for svc in ("keda-operator", "keda-metrics-apiserver", "keda-admission-webhooks")
            for n in service_names(svc, "keda")
        )
        # KEDA's operator and metrics API server also authenticate each other with it (gRPC, mutual TLS).
        keda = pki.issue(ca, directory, "keda", "keda", dns=keda_names, server=True, client=True)
        adapter = pki.issue(
            ca,
            directory,
            "prometheus-adapter",
            "prometheus-adapter",
            dns=service_names("prometheus-adapter", "monitoring"),
            server=True,
        )
        metrics_server = pki.issue(
            ca,
            directory,
            "metrics-server",
            "metrics-server",
            dns=service_names("metrics-server", "kube-system"),
            server=True,
        )
        return cls(ca=ca, keda=keda, adapter=adapter, metrics_server=metrics_server)
