"""Monitoring through the cluster: Debian's Prometheus, started here, scrapes the exporter, the operator and
the worker pods through the API server's pod proxy, with the namespace/pod/queueworker labels a PodMonitor
gives them (the pods are listed every few seconds into file discovery: Debian builds Prometheus without
Kubernetes discovery); every panel query of both dashboards then returns series, and the orphaned-queue
alert fires for the QueueWorker test_beat left at 0 replicas with queued tasks. The rules are the chart's,
with their `for:` cut to seconds so the test need not wait 5 min."""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import os
import re
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import Release, report
from tests.e2e.flows import publish
from tests.support.monitoring import ALERTS, panel_queries, substitute
from tests.support.prometheus import PrometheusServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

#: Panel queries that need an event the cluster's example tasks never produce.
NEEDS_EVENTS_NOT_PRODUCED = ("celery_task_retried_total",)
JOBS = {
    "queueworker-exporter": "exporter",
    "queueworker-operator": "operator",
    "queueworker-workers": "worker",
}


def credentials(context: str, workdir: Path) -> dict[str, str]:
    """The server URL and TLS files of `context` from the kubeconfig (embedded data written to files)."""
    path = Path(os.environ.get("KUBECONFIG") or Path.home() / ".kube" / "config")
    config = yaml.safe_load(path.read_text())
    ctx = next(c["context"] for c in config["contexts"] if c["name"] == context)
    cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == ctx["cluster"])
    user = next(u["user"] for u in config["users"] if u["name"] == ctx["user"])
    out = {"kubeconfig": str(path), "server": cluster["server"]}
    for key, source in (
        ("ca_file", (cluster, "certificate-authority")),
        ("cert_file", (user, "client-certificate")),
        ("key_file", (user, "client-key")),
    ):
        holder, name = source
        if name in holder:
            out[key] = holder[name]
        else:
            target = workdir / f"{key}.pem"
            target.write_bytes(base64.b64decode(holder[f"{name}-data"]))
            out[key] = str(target)
    return out


def target_groups(release: Release, component: str, address: str) -> list[dict[str, Any]]:
    """The running pods of `component` with a port named metrics, as file_sd target groups scraped
    through the API server's pod proxy, labelled as a PodMonitor labels them."""
    selector = f"app.kubernetes.io/name=queueworker,app.kubernetes.io/component={component}"
    groups = []
    for pod in release.cluster.core.list_namespaced_pod(release.namespace, label_selector=selector).items:
        if pod.status.phase != "Running" or pod.metadata.deletion_timestamp is not None:
            continue
        ports = [p for c in pod.spec.containers for p in c.ports or [] if p.name == "metrics"]
        for port in ports:
            ns, name = pod.metadata.namespace, pod.metadata.name
            labels = {
                "namespace": ns,
                "pod": name,
                "__metrics_path__": f"/api/v1/namespaces/{ns}/pods/{name}:{port.container_port}/proxy/"
                "metrics",
            }
            if component == "worker":  # what the chart's PodMonitor adds
                labels["queueworker"] = pod.metadata.labels.get("app.kubernetes.io/instance", "")
            groups.append({"targets": [address], "labels": labels})
    return groups


class Discovery(threading.Thread):
    """Debian's Prometheus is built without Kubernetes service discovery: this lists the pods every few
    seconds and writes them where Prometheus's file discovery reads them (written whole, then renamed)."""

    def __init__(self, release: Release, address: str, workdir: Path) -> None:
        super().__init__(daemon=True)
        self.release, self.address, self.workdir = release, address, workdir
        self.stopped = threading.Event()

    def path(self, job: str) -> Path:
        return self.workdir / f"{job}.json"

    def refresh(self) -> None:
        for job, component in JOBS.items():
            groups = target_groups(self.release, component, self.address)
            tmp = self.path(job).with_suffix(".tmp")
            tmp.write_text(json.dumps(groups))
            tmp.replace(self.path(job))

    def run(self) -> None:
        while not self.stopped.wait(3):
            with contextlib.suppress(Exception):  # an API hiccup: the next round writes them
                self.refresh()


def scrape_job(path: Path, creds: dict[str, str]) -> dict[str, Any]:
    return {
        "scheme": "https",
        "tls_config": {k: creds[k] for k in ("ca_file", "cert_file", "key_file")},
        "file_sd_configs": [{"files": [str(path)], "refresh_interval": "5s"}],
    }


@pytest.fixture(scope="module")
def prometheus(release: Release) -> Iterator[PrometheusServer]:
    workdir = Path(tempfile.mkdtemp(prefix="qw-e2e-prometheus-"))
    creds = credentials(release.cluster.context, workdir)
    rules = yaml.safe_load(ALERTS.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule["for"] = "5s"
    (workdir / "alerts.yaml").write_text(yaml.safe_dump(rules))
    discovery = Discovery(release, re.sub(r"^https?://", "", creds["server"]).rstrip("/"), workdir)
    discovery.refresh()
    discovery.start()
    jobs = {job: scrape_job(discovery.path(job), creds) for job in JOBS}
    server = PrometheusServer(jobs, rule_files=[workdir / "alerts.yaml"], interval="2s", workdir=workdir)
    server.start()
    try:
        yield server
    finally:
        discovery.stopped.set()
        server.stop()


def test_prometheus_scrapes_the_platform_through_the_cluster(
    release: Release, prometheus: PrometheusServer
) -> None:
    # Failures and a rejection on the always-on default worker, for the panels that count them.
    publish(release, "tasks.add", 3, ["a", 1], queue="celery")
    publish(release, "tasks.no_such_task", 1, [], queue="celery")

    def up() -> set[str]:
        return {t["labels"]["job"] for t in prometheus.targets() if t["health"] == "up"}

    jobs = prometheus.wait_for(lambda: up() >= set(JOBS) and up(), 120, f"targets of {sorted(JOBS)} up")
    series = prometheus.wait_for_series('celery_task_succeeded_total{queue_name="celery"}', 120)
    assert {"namespace", "pod", "queueworker"} <= series[0]["metric"].keys(), series[0]["metric"]
    assert series[0]["metric"]["namespace"] == release.namespace
    report(f"prometheus: jobs up {sorted(jobs)}")


def test_every_dashboard_panel_returns_series(release: Release, prometheus: PrometheusServer) -> None:
    ns = release.namespace
    prometheus.wait_for_series('celery_task_failed_total{queue_name="celery"}', 120)
    prometheus.wait_for_series('celery_task_rejected_total{queue_name="celery"}', 120)
    queries = panel_queries()
    for dashboard, title, _legend, expr in queries:
        single = "queue.json" in dashboard  # the drill-down's queue variable is single-valued
        queue = "celery" if single else ".*"
        promql = substitute(expr, queue, ns)
        if any(name in promql for name in NEEDS_EVENTS_NOT_PRODUCED):
            prometheus.query(promql)  # still a valid query
            continue
        prometheus.wait_for(
            functools.partial(prometheus.query, promql), 90, f"{dashboard} / {title}: {promql}"
        )
    report(f"prometheus: {len(queries)} panel queries of 2 dashboards return series")


def test_the_orphaned_queue_alert_fires(prometheus: PrometheusServer) -> None:
    def firing() -> list[dict[str, Any]]:
        return [
            a
            for a in prometheus.api("alerts")["alerts"]
            if a["labels"]["alertname"] == "QueueWorkerQueueOrphaned" and a["state"] == "firing"
        ]

    alerts = prometheus.wait_for(firing, 120, "QueueWorkerQueueOrphaned firing")
    assert {a["labels"]["queue_name"] for a in alerts} == {"beat_check"}, alerts
