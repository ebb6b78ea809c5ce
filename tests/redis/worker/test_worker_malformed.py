"""Malformed messages on a queue — not JSON, JSON that is no message, an unknown task, a body in a
content type the worker refuses — are dropped and counted, and the worker keeps consuming."""

from __future__ import annotations

import base64
import json
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
import redis
from queueworker import make_app

from tests.support.celery_worker import CeleryWorker, executions, write_task_module
from tests.support.redis_server import free_port
from tests.support.waiting import wait_for


def metrics_text(port: int) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()


def envelope(task: str, body: bytes, content_type: str = "application/json") -> str:
    """A kombu/Celery protocol 2 message as it sits in the Redis list."""
    task_id = str(uuid.uuid4())
    return json.dumps(
        {
            "body": base64.b64encode(body).decode(),
            "content-encoding": "utf-8",
            "content-type": content_type,
            "headers": {
                "lang": "py",
                "task": task,
                "id": task_id,
                "root_id": task_id,
                "parent_id": None,
                "group": None,
                "argsrepr": "()",
                "kwargsrepr": "{}",
                "origin": "test",
            },
            "properties": {
                "correlation_id": task_id,
                "delivery_mode": 2,
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": str(uuid.uuid4()),
                "delivery_info": {"exchange": "", "routing_key": "junk"},
            },
        }
    )


def test_malformed_messages_are_rejected_counted_and_the_worker_keeps_going(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, redis_url: str, redis_client: redis.Redis
) -> None:
    write_task_module(tmp_path)
    monkeypatch.setenv("QUEUEWORKER_BROKER_URL", redis_url)
    app = make_app("junk-producer")
    port = free_port()
    with CeleryWorker(
        "qwtasks", ["junk"], broker_url=redis_url, pythonpath=[tmp_path], metrics_port=port, concurrency=1
    ) as worker:
        worker.wait_ready()
        redis_client.lpush("junk", b"this is not json {")  # not JSON at all
        redis_client.lpush("junk", b"\xff\xfe\x00binary")  # not even UTF-8
        redis_client.lpush("junk", json.dumps({"hello": "world"}))  # JSON, but no message
        redis_client.lpush("junk", envelope("qwtasks.nope", b"[[], {}, {}]"))  # unknown task
        redis_client.lpush(
            "junk",
            envelope(
                "qwtasks.record",
                b"\x80\x04K\x01.",  # pickle: refused
                content_type="application/x-python-serialize",
            ),
        )
        app.send_task("qwtasks.record", args=["still-alive"], queue="junk")
        wait_for(lambda: executions(redis_client) == ["still-alive"], 20, message="the valid task to run")
        assert worker.running()
        assert redis_client.llen("junk") == 0
        wait_for(lambda: redis_client.hlen("unacked") == 0, 10, message="nothing left unacked")
        expected = [
            'celery_task_rejected_total{name="(malformed)",queue_name="junk"} 3.0',
            'celery_task_rejected_total{name="qwtasks.nope",queue_name="junk"} 1.0',
            'celery_task_rejected_total{name="qwtasks.record",queue_name="junk"} 1.0',
            'celery_task_succeeded_total{name="qwtasks.record",queue_name="junk"} 1.0',
        ]
        wait_for(lambda: all(line in metrics_text(port) for line in expected), 10, message=f"{expected}")
        time.sleep(0.5)  # a later flush must not add to them
        text = metrics_text(port)
        assert all(line in text for line in expected), text
        # the raw JSON-less items are kept for inspection, not lost silently
        kept = redis_client.lrange("queueworker:malformed:junk", 0, -1)
        assert b"this is not json {" in kept
        assert "Unrecoverable error" not in worker.log()
