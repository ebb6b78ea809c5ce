"""Hostile task messages pushed raw into a queue, beyond tests/redis/worker/test_worker_malformed.py:
oversized items (16 MiB of garbage, a 16 MiB envelope), JSON nested past the parser's recursion limit,
envelopes of the wrong shape (scalars, lists, null or wrongly typed fields, bodies that are not
[args, kwargs, embed], bad base64), also in a priority list. Each is dropped without stopping the worker,
which then runs a normal task."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis
from queueworker import make_app

from tests.redis.worker.test_worker_malformed import envelope
from tests.support.celery_worker import CeleryWorker, executions, write_task_module
from tests.support.waiting import wait_for

BIG = 16 * 2**20
QUEUE = "hostile"


def shaped(**changes: Any) -> str:
    """A valid `qwtasks.record` envelope with some fields replaced (None removes a field)."""
    tag = "hostile:" + "-".join(f"{k}={v}" for k, v in changes.items())[:40]
    message = json.loads(envelope("qwtasks.record", json.dumps([[tag], {}, {}]).encode()))
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        target = message
        for key in parents:
            target = target[key]
        if value is None:
            target.pop(leaf, None)
        else:
            target[leaf] = value
    return json.dumps(message)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


HOSTILE: list[tuple[str, bytes | str]] = [
    ("16 MiB of garbage", b"\x00garbage" * (BIG // 8)),
    (
        "16 MiB envelope of an unknown task",
        envelope("qwtasks.huge", json.dumps([["y" * BIG], {}, {}]).encode()),
    ),
    ("JSON nested 100k deep", "[" * 100_000 + "]" * 100_000),
    (
        "envelope nested 100k deep",
        json.dumps({"body": "", "properties": {}, "headers": {}})[:-1]
        + ', "x": '
        + "[" * 100_000
        + "]" * 100_000
        + "}",
    ),
    ("JSON scalar", "42"),
    ("JSON list", "[1, 2, 3]"),
    ("JSON null", "null"),
    ("properties null", shaped(properties=None)),
    ("properties a string", shaped(properties="nope")),
    ("delivery_info a list", shaped(properties__delivery_info=[1])),
    ("headers a list", shaped(headers=[1, 2])),
    ("task name a number", shaped(headers__task=123)),
    ("task name missing", shaped(headers__task=None)),
    ("task id missing", shaped(headers__id=None)),
    ("body not base64", shaped(body="!!!not base64!!!")),
    ("body a JSON object", shaped(body=b64(b'{"a": 1}'))),
    ("body a JSON string", shaped(body=b64(b'"just a string"'))),
    ("body of two items", shaped(body=b64(b"[[], {}]"))),
    ("args not a list", shaped(body=b64(b'[{"a": 1}, [], {}]'))),
    ("kwargs not a mapping", shaped(body=b64(b"[[], [1], {}]"))),
    ("body not JSON", shaped(body=b64(b"{{{{"))),
    ("content-type unknown", shaped(**{"content-type": "application/x-evil"})),
    # (an unknown content-encoding on a JSON body is ignored by kombu and the task runs: not hostile)
]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_hostile_messages_are_dropped_and_the_worker_keeps_consuming(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, redis_url: str, redis_client: redis.Redis
) -> None:
    write_task_module(tmp_path / "mod")
    monkeypatch.setenv("QUEUEWORKER_BROKER_URL", redis_url)
    app = make_app("hostile-producer")
    with CeleryWorker(
        "qwtasks",
        [QUEUE],
        broker_url=redis_url,
        pythonpath=[tmp_path / "mod"],
        concurrency=1,
        workdir=tmp_path / "worker",
    ) as worker:
        worker.wait_ready(timeout=60)
        survived: list[str] = []
        for what, raw in HOSTILE:
            target = f"{QUEUE}\x06\x169" if len(survived) % 5 == 4 else QUEUE  # some in a priority list
            redis_client.lpush(target, raw)
            tag = f"after-{len(survived)}"
            app.send_task("qwtasks.record", args=[tag], queue=QUEUE)

            def ran_or_stopped(tag: str = tag) -> bool:
                return tag in executions(redis_client) or not worker.running()

            wait_for(ran_or_stopped, 60, message=f"the normal task after {what!r}")
            assert worker.running(), f"the worker stopped on {what}:\n{worker.log()[-3000:]}"
            survived.append(what)
        print(f"\n[security] {len(survived)} hostile messages, worker still consuming: {survived}")
        ran = [t for t in executions(redis_client) if t.startswith("hostile:")]
        assert not ran, f"hostile messages ran as tasks: {ran}"
        assert sorted(executions(redis_client)) == sorted(f"after-{i}" for i in range(len(HOSTILE)))
        wait_for(
            lambda: redis_client.llen(QUEUE) + redis_client.llen(f"{QUEUE}\x06\x169") == 0,
            20,
            message="the queue emptied",
        )
        wait_for(lambda: redis_client.hlen("unacked") == 0, 20, message="nothing left unacked")
        assert "Unrecoverable error" not in worker.log()
        kept = redis_client.lrange(f"queueworker:malformed:{QUEUE}", 0, -1)
        assert kept and max(len(item) for item in kept) <= 64 * 1024, "kept for inspection, but bounded"
        assert redis_client.info("memory")["used_memory"] < BIG, "no oversized item stays in Redis"


def test_every_hostile_item_is_distinct() -> None:
    kinds = [what for what, _ in HOSTILE]
    assert len(set(kinds)) == len(kinds)
    assert all(isinstance(raw, (bytes, str)) for _, raw in HOSTILE)
    assert len(HOSTILE[0][1]) >= BIG and len(HOSTILE[1][1]) >= BIG
    assert str(uuid.UUID(json.loads(shaped())["headers"]["id"]))
