"""Monitoring as a kube-prometheus-stack user gets it: the Prometheus that the Prometheus Operator runs
discovers and scrapes the exporter, the operator and the workers through the chart's own ServiceMonitor
and PodMonitor, loads the chart's PrometheusRule, and answers every panel query of both dashboards;
`QueueWorkerQueueOrphaned` fires for the QueueWorker test_beat left at 0 replicas with queued ticks.
metrics-server answers `kubectl top`.

The chart's rules wait minutes (`for: 5m`): the test shows them loaded and pending, and a copy whose
`for:` is cut to seconds, applied as a PrometheusRule of its own, firing."""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import Release, report
from tests.e2e.flows import publish
from tests.e2e.promapi import Prometheus
from tests.support.monitoring import ALERTS, panel_queries, substitute

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

#: Panel queries that need an event the cluster's example tasks never produce.
NEEDS_EVENTS_NOT_PRODUCED = ("celery_task_retried_total",)
ORPHANED = "QueueWorkerQueueOrphaned"


@pytest.fixture(scope="module")
def prometheus(release: Release) -> Prometheus:
    if "monitoring.coreos.com" not in api_groups(release):
        pytest.fail(
            "the cluster has no Prometheus Operator (monitoring.coreos.com): `make cluster-up` installs it"
        )
    return Prometheus(release.cluster)


def api_groups(release: Release) -> set[str]:
    out = release.cluster.kubectl("api-versions").stdout.split()
    return {line.split("/")[0] for line in out if "/" in line}


def test_the_chart_monitors_are_discovered_and_every_target_is_up(
    release: Release, prometheus: Prometheus
) -> None:
    # Failures and a rejection on the always-on default worker, for the panels that count them.
    publish(release, "tasks.add", 3, ["a", 1], queue="celery")
    publish(release, "tasks.no_such_task", 1, [], queue="celery")
    ns, full = release.namespace, release.fullname
    pools = {
        f"serviceMonitor/{ns}/{full}/0": {f"{full}-exporter", f"{full}-operator"},
        f"podMonitor/{ns}/{full}-workers/0": {f"{ns}/{full}-workers"},
    }

    def up_jobs() -> dict[str, set[str]] | None:
        targets = [t for t in prometheus.targets() if t["scrapePool"] in pools]
        if not targets or any(t["health"] != "up" for t in targets):
            return None
        jobs = {pool: {t["labels"]["job"] for t in targets if t["scrapePool"] == pool} for pool in pools}
        return jobs if jobs == pools else None

    prometheus.wait_for(up_jobs, 180, f"every target of {sorted(pools)} up")
    workers = [t for t in prometheus.targets() if t["scrapePool"].startswith("podMonitor/")]
    for target in workers:  # what the dashboards and alerts select on
        assert {"namespace", "pod", "queueworker"} <= target["labels"].keys(), target["labels"]
    series = prometheus.wait_for_series('celery_task_succeeded_total{queue_name="celery"}', 120)
    assert series[0]["metric"]["namespace"] == ns, series[0]["metric"]
    assert series[0]["metric"]["queueworker"] == "default", series[0]["metric"]
    exporter = prometheus.wait_for_series("queueworker_broker_up", 60)
    assert exporter[0]["metric"]["job"] == f"{full}-exporter", exporter
    report(
        f"prometheus-operator: {len(workers)} worker targets and 2 services up through the chart's monitors"
    )


def test_every_dashboard_panel_returns_series(release: Release, prometheus: Prometheus) -> None:
    ns = release.namespace
    prometheus.wait_for_series('celery_task_failed_total{queue_name="celery"}', 120)
    prometheus.wait_for_series('celery_task_rejected_total{queue_name="celery"}', 120)
    queries = panel_queries()
    for dashboard, title, _legend, expr in queries:
        single = "queue.json" in dashboard  # the drill-down's queue variable is single-valued
        promql = substitute(expr, "celery" if single else ".*", ns)
        if any(name in promql for name in NEEDS_EVENTS_NOT_PRODUCED):
            prometheus.query(promql)  # still a valid query
            continue
        prometheus.wait_for(
            functools.partial(prometheus.query, promql), 90, f"{dashboard} / {title}: {promql}"
        )
    report(f"prometheus-operator: {len(queries)} panel queries of 2 dashboards return series")


@pytest.fixture
def fast_rules(release: Release) -> Iterator[str]:
    """The chart's alert rules with `for:` cut to 5 s, as a PrometheusRule of their own."""
    rules = yaml.safe_load(ALERTS.read_text())
    groups = copy.deepcopy(rules["groups"])
    for group in groups:
        group["name"] += ".fast"
        for rule in group["rules"]:
            rule["for"] = "5s"
    name = "e2e-alerts-fast"
    doc = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": name, "namespace": release.namespace},
        "spec": {"groups": groups},
    }
    release.cluster.kubectl("apply", "-f", "-", stdin=json.dumps(doc))
    yield name
    release.cluster.kubectl("delete", "prometheusrule", name, "-n", release.namespace, check=False)


def test_the_rules_load_and_the_orphaned_queue_alert_fires(
    release: Release, prometheus: Prometheus, fast_rules: str
) -> None:
    chart_groups = {g["name"] for g in yaml.safe_load(ALERTS.read_text())["groups"]}

    def chart_rule_pending() -> list[dict[str, Any]]:
        groups = [g for g in prometheus.rule_groups() if g["name"] in chart_groups]
        if {g["name"] for g in groups} != chart_groups:
            return []
        return [
            r
            for g in groups
            for r in g["rules"]
            if r.get("name") == ORPHANED and r.get("state") in ("pending", "firing")
        ]

    loaded = prometheus.wait_for(chart_rule_pending, 120, f"the chart's rules loaded, {ORPHANED} pending")
    firing = prometheus.wait_for(
        lambda: prometheus.alerts(ORPHANED, "firing"), 120, f"{ORPHANED} firing (the 5 s copy)"
    )
    assert {a["labels"]["queue_name"] for a in firing} == {"beat_check"}, firing
    report(
        f"prometheus-operator: the chart's {len(chart_groups)} rule groups loaded; {ORPHANED} "
        f"{loaded[0]['state']} (for: 5m), and firing for beat_check from the 5 s copy ({fast_rules})"
    )


def test_kubectl_top_answers(release: Release) -> None:
    def top() -> str | None:
        out = release.cluster.kubectl("top", "pods", "-n", release.namespace, check=False)
        return out.stdout if out.returncode == 0 and f"{release.fullname}-operator" in out.stdout else None

    from tests.e2e.cluster import wait_for

    table = wait_for("kubectl top pods to answer (metrics-server)", top, timeout=120, interval=5)
    report(
        f"metrics-server: kubectl top pods -n {release.namespace} lists {len(table.splitlines()) - 1} pods"
    )
