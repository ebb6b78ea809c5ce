"""The local cluster's add-ons, the ecosystem QueueWorker plugs into: KEDA (namespace keda), the Prometheus
Operator and its Prometheus, prometheus-adapter (monitoring), metrics-server (kube-system). `install`
applies them all and waits until each is Ready and each metrics API is Available."""

from __future__ import annotations

import sys
import time

from hack.cluster import keda, metrics_apis, monitoring
from hack.cluster.certs import Certs
from hack.cluster.client import apply, kubectl, rollout
from hack.cluster.controlplane import ControlPlane

IMAGES_SCRIPT = "hack/addons/images.sh"
EXTERNAL_METRICS = "v1beta1.external.metrics.k8s.io"
RESOURCE_METRICS = "v1beta1.metrics.k8s.io"


def certs(plane: ControlPlane) -> Certs:
    return Certs.ensure(plane.pki_dir / "addons")


def _wait_condition(plane: ControlPlane, what: str, condition: str, timeout: int) -> None:
    """`kubectl wait --for=condition=...` on `what` (words, as kubectl takes them: `crd --all`)."""
    out = kubectl(plane, "wait", f"--for=condition={condition}", *what.split(), f"--timeout={timeout}s")
    if out.returncode != 0:
        detail = kubectl(plane, "get", *what.split(), "-o", "yaml").stdout
        raise SystemExit(f"{what} not {condition} in {timeout} s: {out.stderr}\n{detail[-3000:]}")


def _wait_exists(plane: ControlPlane, ns: str, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while kubectl(plane, "-n", ns, "get", what).returncode != 0:
        if time.monotonic() > deadline:
            log = kubectl(plane, "-n", ns, "logs", "deployment/prometheus-operator", "--tail=30").stdout
            raise SystemExit(f"{ns}/{what} was not created in {timeout:.0f} s; the operator's log:\n{log}")
        time.sleep(1)


def install(plane: ControlPlane, timeout: int = 300) -> None:
    start = time.monotonic()
    pki = certs(plane)
    apply(plane, keda.crds() + monitoring.crds(), "the add-ons' CRDs")
    _wait_condition(plane, "crd --all", "Established", 60)
    apply(plane, keda.objects(pki) + monitoring.objects() + metrics_apis.objects(pki))
    apply(plane, [metrics_apis.external_metrics("keda", pki)], "the External-metrics APIService")
    apply(plane, monitoring.prometheus(), "the Prometheus")
    rollout(plane, "deployment", keda.deployments() + metrics_apis.deployments(), timeout)
    rollout(plane, "deployment", [f"{monitoring.NAMESPACE}/{monitoring.OPERATOR}"], timeout)
    statefulset = f"prometheus-{monitoring.PROMETHEUS}"
    _wait_exists(plane, monitoring.NAMESPACE, f"statefulset/{statefulset}", 60)
    rollout(plane, "statefulset", [f"{monitoring.NAMESPACE}/{statefulset}"], timeout)
    for api in (EXTERNAL_METRICS, RESOURCE_METRICS):
        _wait_condition(plane, f"apiservice/{api}", "Available", 120)
    print(
        f"add-ons ready in {time.monotonic() - start:.0f} s: KEDA, Prometheus Operator, Prometheus "
        f"{monitoring.PROMETHEUS_VERSION}, prometheus-adapter, metrics-server",
        file=sys.stderr,
    )


def external_metrics(plane: ControlPlane, provider: metrics_apis.Provider) -> None:
    """Hand the cluster's External-metrics API to KEDA or to prometheus-adapter, and wait until the
    API server reaches it."""
    apply(plane, [metrics_apis.external_metrics(provider, certs(plane))], "the External-metrics APIService")
    _wait_condition(plane, f"apiservice/{EXTERNAL_METRICS}", "Available", 120)
    print(f"external.metrics.k8s.io is served by {provider}", file=sys.stderr)
