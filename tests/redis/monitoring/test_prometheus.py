"""A real Prometheus scrapes the exporter, a real worker and the operator's metrics; every dashboard
panel query and every alert expression evaluates through the HTTP API and returns series where data
exists; then Redis and the exporter go down and the platform alerts see it.

The tests of this module share one stack and run in order; the last one takes it down.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from celery import Celery
from queueworker import make_app
from queueworker.broker import keys
from queueworker.exporter import Exporter
from queueworker_operator import metrics as operator_metrics

from tests.support.celery_worker import CeleryWorker
from tests.support.monitoring import ALERTS, DASHBOARDS, alert_rules, panel_queries, substitute
from tests.support.prometheus import PrometheusServer
from tests.support.redis_server import RedisServer, free_port
from tests.support.waiting import wait_for

#: Panel queries that need an event this stack does not produce (no example task retries).
NEEDS_EVENTS_NOT_PRODUCED = ("celery_task_retried_total",)


@dataclass
class Stack:
    server: RedisServer
    client: redis.Redis
    producer: Celery
    worker: CeleryWorker
    exporter: Exporter
    prometheus: PrometheusServer
    operator_server: Any


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    server = RedisServer().start()
    client = server.client()
    client.hset(
        keys.TARGETS_HASH,
        mapping={
            "emails": json.dumps({"targetWaitSeconds": 0.5, "queueworker": "shop/emails"}),
            "lost": json.dumps({"targetWaitSeconds": 60, "queueworker": "shop/lost"}),
        },
    )
    producer = make_app("prometheus-tests", broker_url=server.url)
    worker = CeleryWorker(
        "tasks", ["emails"], broker_url=server.url, concurrency=2, pool="threads", metrics_port=free_port()
    )
    exporter = Exporter(server.url, discover=True, port=0, address="127.0.0.1").start()
    # The operator's registry is this process's: an operator run in-process by an earlier test of the
    # session (the apiserver tier) may have left series of its QueueWorkers there.
    for labelled in (
        operator_metrics.REPLICAS_DESIRED,
        operator_metrics.REPLICAS_READY,
        operator_metrics.SCALE_EVENTS,
    ):
        labelled.clear()
    operator_metrics.REPLICAS_DESIRED.labels("shop", "emails").set(2)
    operator_metrics.REPLICAS_READY.labels("shop", "emails").set(1)
    operator_metrics.SCALE_EVENTS.labels("shop", "emails", "up").inc()
    operator_metrics.reconciled("ok")
    operator_metrics.reconciled("error")
    operator_port = free_port()
    operator_server = operator_metrics.serve(operator_port)
    worker_target = f"127.0.0.1:{worker.env['QUEUEWORKER_METRICS_PORT']}"
    # the worker job gets what the chart's PodMonitor adds: the pod's namespace and its QueueWorker
    worker_labels = {"namespace": "shop", "queueworker": "emails"}
    prometheus = PrometheusServer(
        {
            "queueworker-exporter": [f"127.0.0.1:{exporter.port}"],
            "queueworker-operator": [f"127.0.0.1:{operator_port}"],
            "queueworker-workers": {
                "static_configs": [{"targets": [worker_target], "labels": worker_labels}]
            },
        },
        rule_files=[ALERTS],
    )
    worker.start()
    prometheus.start()
    stack = Stack(server, client, producer, worker, exporter, prometheus, operator_server)
    try:
        worker.wait_ready()
        prometheus.wait_for_targets_up()
        load(stack)
        yield stack
    finally:
        prometheus.stop()
        worker.stop(timeout=5)
        exporter.stop()
        operator_server.shutdown()
        producer.close()
        server.stop()


def load(stack: Stack) -> None:
    """Successes, failures (counted by Prometheus before and after), a rejected message, busy slots with a
    backlog, an orphaned queue, and a task held by a worker that is gone."""
    send = stack.producer.send_task
    send("tasks.add", args=[1, 2], queue="emails")
    send("tasks.add", args=["a", 1], queue="emails")  # TypeError: failed
    stack.prometheus.wait_for_series('celery_task_failed_total{queue_name="emails"} >= 1')
    for _ in range(6):
        send("tasks.add", args=["a", 1], queue="emails")
    send("tasks.no_such_task", queue="emails")  # rejected
    stack.prometheus.wait_for_series('celery_task_failed_total{queue_name="emails"} >= 7')
    for _ in range(2):
        send("tasks.taskA", kwargs={"seconds": 300}, queue="emails")
    wait_for(
        lambda: stack.client.hlen(keys.UNACKED_HASH) == 2 and stack.client.llen("emails") == 0,
        30,
        message="both slots busy",
    )
    for priority in (0, 9, 0):
        send("tasks.taskA", kwargs={"seconds": 0}, queue="emails", priority=priority)
    for _ in range(2):
        send("tasks.add", args=[1, 1], queue="nobody")
    message = {"body": "", "headers": {"task": "tasks.add"}, "properties": {"delivery_tag": "gone"}}
    stack.client.hset(keys.UNACKED_HASH, "gone", json.dumps([message, "", "lost"]))


def test_scrape_figures_are_exact(stack: Stack) -> None:
    prom = stack.prometheus
    prom.wait_for(lambda: prom.query('celery_queue_length{queue_name="emails"} == 3'), 30, "emails depth 3")
    values = {
        'celery_queue_length{queue_name="nobody"}': "2",
        'queueworker_queue_orphaned{queue_name="nobody"}': "1",
        'queueworker_queue_reserved{queue_name="emails"}': "2",
        'queueworker_queue_busy_slots{queue_name="emails"}': "2",
        'queueworker_queue_total_slots{queue_name="emails"}': "2",
        'queueworker_queue_workers{queue_name="emails"}': "1",
        'queueworker_queue_orphaned{queue_name="emails"}': "0",
        'queueworker_queue_target_wait_seconds{queue_name="emails"}': "0.5",
        'queueworker_queue_reserved{queue_name="lost"}': "1",
        "queueworker_broker_up": "1",
    }
    prom.wait_for(
        lambda: all(prom.query(f"{expr} == {value}") for expr, value in values.items()),
        30,
        "the exact figures",
    )
    # exporter series only ever have the queue_name label (plus job and instance from the scrape)
    for series in prom.query('{job="queueworker-exporter", __name__=~"celery_queue.*|queueworker_queue.*"}'):
        assert set(series["metric"]) == {"__name__", "job", "instance", "queue_name"}


def test_every_dashboard_panel_query_evaluates_and_returns_series(stack: Stack) -> None:
    prom = stack.prometheus
    queries = panel_queries()
    assert len(queries) > 30
    for dashboard, title, _legend, expr in queries:
        single = "queue.json" in dashboard  # the drill-down's queue variable is single-valued
        selections = (
            [("emails", ".*"), ("emails", "shop")]
            if single
            else [(".*", ".*"), ("emails|nobody|lost", ".*"), ("emails|nobody|lost", "shop")]
        )
        for queue, namespace in selections:
            promql = substitute(expr, queue, namespace)
            assert "$" not in promql, f"{dashboard} / {title}: unknown variable in {expr}"
            if any(name in promql for name in NEEDS_EVENTS_NOT_PRODUCED):
                prom.query(promql)  # must still be a valid query
                continue
            prom.wait_for(functools.partial(prom.query, promql), 30, f"{dashboard} / {title}: {promql}")


def test_dashboard_variables_list_the_values(stack: Stack) -> None:
    found: dict[str, set[str]] = {}
    for path in DASHBOARDS:
        for variable in json.loads(path.read_text())["templating"]["list"]:
            if variable["type"] != "query":
                continue
            match = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", variable["query"]["query"])
            assert match, variable
            metric, label = match.groups()
            values = stack.prometheus.api(f"label/{label}/values", **{"match[]": metric})
            found.setdefault(variable["name"], set()).update(values)
    assert found["namespace"] == {"shop"}
    assert {"emails", "nobody", "lost"} <= found["queue"]


def test_every_alert_expression_evaluates_and_fires_where_its_condition_holds(stack: Stack) -> None:
    prom = stack.prometheus
    expected = {  # alert -> a label set its expression must return on this stack
        "QueueWorkerQueueOrphaned": {"queue_name": "nobody"},
        "QueueWorkerWaitAboveTarget": {"queue_name": "emails"},
        "QueueWorkerFailureRatioHigh": {"queue_name": "emails", "namespace": "shop", "queueworker": "emails"},
        "QueueWorkerWorkersDown": {"queue_name": "lost"},
    }
    for rule in alert_rules():
        result = prom.query(rule["expr"])  # raises on an invalid expression
        want = expected.get(rule["alert"])
        if rule["alert"] == "QueueWorkerWorkersDown" and rule["labels"]["cause"] == "replicas":
            want = {"namespace": "shop", "queueworker": "emails"}
        if want is None:
            assert result == [], f"{rule['alert']} fires on a healthy stack: {result}"
            continue
        result = prom.wait_for(functools.partial(prom.query, rule["expr"]), 30, rule["alert"])
        assert any(want.items() <= series["metric"].items() for series in result), (rule["alert"], result)

    # Prometheus itself evaluates the loaded rules without error, and they are pending (their `for:` runs)
    def evaluated() -> list[dict[str, Any]] | None:
        rules = prom.rules()
        return rules if rules and all(not r["lastEvaluation"].startswith("0001") for r in rules) else None

    rules = prom.wait_for(evaluated, 30, "every rule evaluated")
    assert len(rules) == len(alert_rules())
    assert all(r["health"] == "ok" for r in rules), [r for r in rules if r["health"] != "ok"]
    pending = prom.wait_for(
        lambda: (
            {a["labels"]["alertname"] for a in prom.api("alerts")["alerts"]} >= set(expected)
            and prom.api("alerts")["alerts"]
        ),
        30,
        "pending alerts",
    )
    assert {a["labels"]["alertname"] for a in pending} == set(expected)


def test_broker_then_exporter_down(stack: Stack) -> None:
    prom = stack.prometheus
    rules = {rule["alert"]: rule["expr"] for rule in alert_rules()}
    stack.worker.kill()
    stack.server.stop()
    prom.wait_for(lambda: prom.query("queueworker_broker_up == 0"), 30, "broker_up 0")
    # never a zero depth for a queue that could not be read: the queue series are gone
    prom.wait_for(lambda: not prom.query("celery_queue_length"), 30, "queue series to go stale")
    assert prom.query("queueworker_queue_reserved") == []
    assert prom.query(rules["QueueWorkerBrokerDown"])
    assert prom.query(rules["QueueWorkerExporterDown"]) == []

    stack.exporter.stop()
    prom.wait_for(lambda: prom.query('up{job="queueworker-exporter"} == 0'), 30, "exporter down")
    result = prom.query(rules["QueueWorkerExporterDown"])
    assert [series["metric"]["job"] for series in result] == ["queueworker-exporter"]
    assert prom.query(rules["QueueWorkerBrokerDown"])  # absent(queueworker_broker_up)
