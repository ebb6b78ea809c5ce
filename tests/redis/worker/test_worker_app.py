"""make_app(): configuration from the environment, the publish stamp, the ETA guard, routes — and a real
worker running routed tasks from the queues their routes name."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from queueworker import make_app
from queueworker.broker.keys import PUBLISHED_HEADER

from tests.support.celery_worker import CeleryWorker, scrape
from tests.support.redis_server import free_port
from tests.support.waiting import wait_for


def raw_messages(client: redis.Redis, queue: str) -> list[dict]:
    return [json.loads(raw) for raw in client.lrange(queue, 0, -1)]


def test_config_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, redis_url: str) -> None:
    routes = tmp_path / "routes.json"
    routes.write_text(
        json.dumps(
            {
                "version": 1,
                "routes": [{"pattern": "shop.email.*", "queue": "emails", "queueworker": "default/emails"}],
            }
        )
    )
    monkeypatch.setenv("QUEUEWORKER_BROKER_URL", redis_url)
    monkeypatch.setenv("QUEUEWORKER_RESULT_BACKEND", redis_url.replace("/0", "/1"))
    monkeypatch.setenv("QUEUEWORKER_VISIBILITY_TIMEOUT", "120")
    monkeypatch.setenv("QUEUEWORKER_PREFETCH_MULTIPLIER", "4")
    monkeypatch.setenv("QUEUEWORKER_SOFT_SHUTDOWN_TIMEOUT", "50")
    monkeypatch.setenv("QUEUEWORKER_ROUTES_FILE", str(routes))
    app = make_app("cfg")
    conf = app.conf
    assert conf.broker_url == redis_url
    assert conf.broker_transport_options["visibility_timeout"] == 120
    assert conf.result_backend_transport_options["visibility_timeout"] == 120
    assert conf.broker_transport_options["socket_timeout"] > 0
    assert conf.broker_transport_options["socket_keepalive"] is True
    assert conf.broker_transport_options["health_check_interval"] > 0
    # expired messages are swept every vt/5 s (at most 10 s), not kombu's 100 s
    assert conf.broker_transport_options["unacked_restore_interval"] == 10
    assert conf.broker_transport_options["unacked_restore_throttle"] == 1
    assert conf.task_serializer == conf.result_serializer == "json"
    assert list(conf.accept_content) == ["json"]
    assert conf.task_acks_late is True and conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 4
    assert conf.worker_soft_shutdown_timeout == 50.0
    assert conf.worker_enable_soft_shutdown_on_idle is True
    assert conf.broker_connection_retry_on_startup is True
    assert conf.redbeat_redis_url == redis_url
    route = app.amqp.router.route({}, "shop.email.send", (), {})
    assert route["queue"].name == "emails"
    assert app.amqp.router.route({}, "shop.other", (), {})["queue"].name == "celery"
    # overrides win over the environment
    assert make_app("cfg2", worker_prefetch_multiplier=1).conf.worker_prefetch_multiplier == 1


def test_publish_stamp_in_raw_message(
    monkeypatch: pytest.MonkeyPatch, redis_url: str, redis_client: redis.Redis
) -> None:
    monkeypatch.setenv("QUEUEWORKER_BROKER_URL", redis_url)
    app = make_app("stamps")

    @app.task(name="stamps.job")
    def job(x: int) -> int:
        return x

    before = time.time()
    job.apply_async((1,), queue="stamped")
    app.send_task("stamps.other", queue="stamped")
    after = time.time()
    messages = raw_messages(redis_client, "stamped")
    assert len(messages) == 2
    for message in messages:
        stamp = message["headers"][PUBLISHED_HEADER]
        assert isinstance(stamp, float)
        assert before <= stamp <= after


def test_eta_beyond_visibility_timeout_is_refused(
    monkeypatch: pytest.MonkeyPatch, redis_url: str, redis_client: redis.Redis
) -> None:
    monkeypatch.setenv("QUEUEWORKER_BROKER_URL", redis_url)
    monkeypatch.setenv("QUEUEWORKER_VISIBILITY_TIMEOUT", "5")
    app = make_app("eta")

    @app.task(name="eta.job")
    def job() -> None:
        return None

    refused = r"eta\.job: countdown=10s exceeds QUEUEWORKER_VISIBILITY_TIMEOUT=5s"
    with pytest.raises(ValueError, match=refused):
        job.apply_async(countdown=10, queue="eta")
    with pytest.raises(ValueError, match=r"eta\.other: eta=.*QUEUEWORKER_VISIBILITY_TIMEOUT=5s"):
        app.send_task("eta.other", eta=datetime.now(UTC) + timedelta(minutes=5), queue="eta")
    assert redis_client.llen("eta") == 0  # nothing was published
    job.apply_async(countdown=3, queue="eta")
    app.send_task("eta.other", eta=datetime.now(UTC) + timedelta(seconds=2), queue="eta")
    assert redis_client.llen("eta") == 2


def test_routed_tasks_run_from_their_queue_and_unconsumed_queue_stays_pending(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, redis_url: str, redis_client: redis.Redis
) -> None:
    routes = tmp_path / "routes.json"
    routes.write_text(
        json.dumps(
            {
                "version": 1,
                "routes": [
                    {"pattern": "tasks.taskA", "queue": "for_task_A", "queueworker": "default/task-a"},
                    {"pattern": "tasks.taskB", "queue": "for_task_B", "queueworker": "default/task-b"},
                    {"pattern": "tasks.add", "queue": "nobody_consumes", "queueworker": "default/gone"},
                ],
            }
        )
    )
    backend = redis_url.replace("/0", "/1")
    env = {"QUEUEWORKER_ROUTES_FILE": str(routes), "QUEUEWORKER_RESULT_BACKEND": backend}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("QUEUEWORKER_BROKER_URL", redis_url)
    producer = make_app("producer")
    port = free_port()
    with CeleryWorker(
        "tasks", ["for_task_A", "for_task_B"], broker_url=redis_url, env=env, metrics_port=port
    ) as worker:
        worker.wait_ready()
        a = [producer.send_task("tasks.taskA", args=[0.05]) for _ in range(3)]
        b = [producer.send_task("tasks.taskB", args=[0.05]) for _ in range(2)]
        pending = producer.send_task("tasks.add", args=[1, 2])
        assert [r.get(timeout=20) for r in a] == ["A done"] * 3
        assert [r.get(timeout=20) for r in b] == ["B done"] * 2
        expected = {
            'celery_task_succeeded_total{name="tasks.taskA",queue_name="for_task_A"}': 3,
            'celery_task_succeeded_total{name="tasks.taskB",queue_name="for_task_B"}': 2,
        }
        wait_for(
            lambda: all(scrape(port).get(k) == v for k, v in expected.items()),
            10,
            message=f"metrics {expected}",
        )
        samples = scrape(port)
        assert not any("tasks.add" in key for key in samples)
        # the task routed to a queue nobody consumes stays queued, visibly: PENDING and in its list
        time.sleep(1.0)
        assert pending.state == "PENDING"
        assert redis_client.llen("nobody_consumes") == 1
        message = raw_messages(redis_client, "nobody_consumes")[0]
        assert message["headers"]["task"] == "tasks.add"
        assert message["headers"][PUBLISHED_HEADER] <= time.time()
        wait_for(
            lambda: worker.heartbeats().get("for_task_A", {}).get("processed") == 5,
            10,
            message="heartbeat to count 5 processed",
        )
        assert int(redis_client.get("queueworker:completed:for_task_A") or 0) == 3
        assert int(redis_client.get("queueworker:completed:for_task_B") or 0) == 2
