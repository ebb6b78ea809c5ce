"""Worker metrics: counters and histograms from every prefork child add up on the one /metrics endpoint,
with celery-exporter's names and labels, and the recorded wait is at least the real wait."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis
from queueworker import make_app

from tests.support.celery_worker import CeleryWorker, as_text, executions, scrape, write_task_module
from tests.support.redis_server import free_port
from tests.support.waiting import wait_for


def test_prefork_metrics_add_up_and_wait_time_is_real(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, redis_url: str, redis_client: redis.Redis
) -> None:
    write_task_module(tmp_path)
    monkeypatch.setenv("QUEUEWORKER_BROKER_URL", redis_url)
    app = make_app("metrics-producer")
    published = time.time()
    for i in range(3):
        app.send_task("qwtasks.record", args=[f"waited{i}"], queue="waitq")
    time.sleep(2.2)  # nobody consumes yet: these tasks wait at least this long
    port = free_port()
    with CeleryWorker(
        "qwtasks",
        ["waitq", "mq"],
        broker_url=redis_url,
        pythonpath=[tmp_path],
        concurrency=2,
        metrics_port=port,
    ) as worker:
        worker.wait_ready()
        real_wait = time.time() - published
        for i in range(20):
            app.send_task("qwtasks.record", args=[f"m{i}", 0.1], queue="mq")
        for _ in range(2):
            app.send_task("qwtasks.fail", queue="mq")
        app.send_task("qwtasks.flaky", args=["flaky"], queue="mq")
        wait_for(lambda: len(executions(redis_client)) == 24, 30, message="all tasks to run")
        pids = {as_text(raw).rsplit(":", 1)[1] for raw in redis_client.lrange("test:executions", 0, -1)}
        assert len(pids) == 2, "both prefork children ran tasks"
        labels = '{name="qwtasks.record",queue_name="mq"}'
        settled = {
            f"celery_task_runtime_count{labels}": 20,
            f"celery_task_received_total{labels}": 20,
            'celery_task_failed_total{name="qwtasks.fail",queue_name="mq"}': 2,
            'celery_task_succeeded_total{name="qwtasks.flaky",queue_name="mq"}': 1,
            # the retry is counted by the child that ran the first try, flushed on its own second
            'celery_task_retried_total{name="qwtasks.flaky",queue_name="mq"}': 1,
        }
        wait_for(
            lambda: all(scrape(port).get(k) == v for k, v in settled.items()),
            10,
            message=f"metrics {settled}",
        )
        samples = scrape(port)
        assert samples[f"celery_task_received_total{labels}"] == 20
        assert samples[f"celery_task_started_total{labels}"] == 20
        assert samples[f"celery_task_succeeded_total{labels}"] == 20
        assert samples[f"celery_task_runtime_sum{labels}"] >= 20 * 0.1
        assert samples['celery_task_failed_total{name="qwtasks.fail",queue_name="mq"}'] == 2
        assert samples['celery_task_retried_total{name="qwtasks.flaky",queue_name="mq"}'] == 1
        assert samples['celery_task_succeeded_total{name="qwtasks.flaky",queue_name="mq"}'] == 1
        assert not any("hostname" in key for key in samples)
        waited = '{name="qwtasks.record",queue_name="waitq"}'
        assert samples[f"queueworker_task_wait_seconds_count{waited}"] == 3
        le_1 = 'queueworker_task_wait_seconds_bucket{le="1.0",name="qwtasks.record",queue_name="waitq"}'
        assert samples[le_1] == 0
        assert samples[f"queueworker_task_wait_seconds_sum{waited}"] >= 3 * 2.2
        assert samples[f"queueworker_task_wait_seconds_sum{waited}"] <= 3 * (real_wait + 5)


def test_batched_histogram_matches_observe() -> None:
    """The batch writer's per-bucket adds give exactly what observe() one by one gives."""
    from prometheus_client import CollectorRegistry, Histogram
    from queueworker.worker.metricbatch import observe_many
    from queueworker.worker.metrics import BUCKETS

    values = [0.0, 0.004, 0.005, 0.0051, 0.3, 1.0, 7.5, 59.0, 3600.0, 99999.0]
    samples = []
    for batched in (False, True):
        registry = CollectorRegistry()
        histogram = Histogram("h", "h", buckets=BUCKETS, registry=registry)
        if batched:
            observe_many(histogram, values)
        else:
            for value in values:
                histogram.observe(value)
        samples.append(
            {
                (s.name, tuple(sorted(s.labels.items()))): s.value
                for metric in registry.collect()
                for s in metric.samples
                if not s.name.endswith("_created")
            }
        )
    assert samples[0] == samples[1]
    assert samples[1][("h_count", ())] == len(values)


FOREIGN_BASES = """
from celery import Task

from queueworker import make_app
from queueworker.worker.task import QueueWorkerTask

app = make_app("qwbases")


class Plain(Task):
    pass


class Overriding(QueueWorkerTask):
    def after_return(self, *args, **kwargs):
        super().after_return(*args, **kwargs)


@app.task(name="bases.own")
def own():
    return 1


@app.task(name="bases.plain", base=Plain)
def plain():
    return 2


@app.task(name="bases.overriding", base=Overriding)
def overriding():
    return 3
"""


def test_tasks_of_any_base_are_counted_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, redis_url: str, redis_client: redis.Redis
) -> None:
    """The base class counts its own tasks; a foreign base or an overridden hook falls back to signal
    receivers; no task is counted twice or missed (solo pool: one process, every count in it)."""
    write_task_module(tmp_path, "qwbases", FOREIGN_BASES)
    monkeypatch.setenv("QUEUEWORKER_BROKER_URL", redis_url)
    producer = make_app("bases-producer")
    port = free_port()
    names = ("bases.own", "bases.plain", "bases.overriding")
    with CeleryWorker(
        "qwbases",
        ["bq"],
        broker_url=redis_url,
        pythonpath=[tmp_path],
        pool="solo",
        concurrency=1,
        metrics_port=port,
    ) as worker:
        worker.wait_ready()
        for name in names:
            for _ in range(5):
                producer.send_task(name, queue="bq")
        wanted = {f'celery_task_succeeded_total{{name="{name}",queue_name="bq"}}': 5 for name in names}
        wait_for(
            lambda: all(scrape(port).get(k) == v for k, v in wanted.items()), 15, message=f"metrics {wanted}"
        )
        time.sleep(0.5)  # two more flushes: a double count would show now
        samples = scrape(port)
        for name in names:
            labels = f'{{name="{name}",queue_name="bq"}}'
            for sample in (
                "celery_task_started_total",
                "celery_task_succeeded_total",
                "celery_task_runtime_count",
                "queueworker_task_wait_seconds_count",
            ):
                assert samples[f"{sample}{labels}"] == 5, f"{sample}{labels}"
        assert "bases.overriding, bases.plain" in worker.log()
