"""`qw exporter` on a real Redis: exact metric values, a scrape promtool accepts, the broker going away
(broker_up 0 and no queue series, still serving) and coming back, and a password that never shows."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry
from queueworker.broker import keys
from queueworker.cli.exporter import resolve
from queueworker.exporter import QueueCollector, Scrape, redis_client, render

from tests.support.redis_server import RedisServer, free_port
from tests.support.waiting import wait_for

NOW = 2_000_000_000.0
PASSWORD = "s3cret-Pa55word"


def message(queue: str, stamp: float | None) -> str:
    headers = {"task": "t", "id": "x"} | ({keys.PUBLISHED_HEADER: stamp} if stamp is not None else {})
    properties = {"delivery_info": {"routing_key": queue}}
    return json.dumps({"body": "", "headers": headers, "properties": properties})


def samples(text: str) -> dict[tuple[str, str], float]:
    """{(sample name, queue_name label or ""): value} of an exposition."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, sample.labels.get("queue_name", ""))] = sample.value
    return found


def scrape(port: int, path: str = "/metrics") -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        assert response.status == 200
        return str(response.read().decode())


def promtool_check(text: str) -> str:
    result = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_collector_values_are_exact(redis_client: redis.Redis) -> None:
    for lst, n in zip(keys.queue_lists("emails"), (2, 0, 1, 0), strict=True):
        for i in range(n):
            redis_client.lpush(lst, message("emails", NOW - 40.0 + i))
    redis_client.lpush("unstamped", message("unstamped", None))
    hb = {"hostname": "w1", "pid": 1, "busy": 1, "total": 4, "processed": 0, "ts": NOW - 2}
    redis_client.hset(keys.heartbeat_key("emails"), "w1", json.dumps(hb))
    redis_client.set(keys.completed_key("emails"), 17)
    redis_client.hset(keys.UNACKED_HASH, "t1", json.dumps([{"body": ""}, "", "emails"]))
    target = {"targetWaitSeconds": 30, "queueworker": "a/b"}
    redis_client.hset(keys.TARGETS_HASH, "emails", json.dumps(target))
    registry = CollectorRegistry()
    registry.register(QueueCollector(redis_client, ["emails", "unstamped", "idle"], clock=lambda: NOW))
    from prometheus_client import generate_latest

    text = generate_latest(registry).decode()
    got = samples(text)
    assert {k: v for k, v in got.items() if k[0] != "queueworker_scrape_duration_seconds"} == {
        ("celery_queue_length", "emails"): 3.0,
        ("celery_queue_length", "unstamped"): 1.0,
        ("celery_queue_length", "idle"): 0.0,
        ("queueworker_queue_reserved", "emails"): 1.0,
        ("queueworker_queue_reserved", "unstamped"): 0.0,
        ("queueworker_queue_reserved", "idle"): 0.0,
        ("queueworker_queue_workers", "emails"): 1.0,
        ("queueworker_queue_workers", "unstamped"): 0.0,
        ("queueworker_queue_workers", "idle"): 0.0,
        ("queueworker_queue_busy_slots", "emails"): 1.0,
        ("queueworker_queue_busy_slots", "unstamped"): 0.0,
        ("queueworker_queue_busy_slots", "idle"): 0.0,
        ("queueworker_queue_total_slots", "emails"): 4.0,
        ("queueworker_queue_total_slots", "unstamped"): 0.0,
        ("queueworker_queue_total_slots", "idle"): 0.0,
        # the oldest is the base list's tail (NOW - 40); "unstamped" has no series: unknown, not 0
        ("queueworker_queue_oldest_wait_seconds", "emails"): 40.0,
        ("queueworker_queue_oldest_wait_seconds", "idle"): 0.0,
        ("queueworker_queue_orphaned", "emails"): 0.0,
        ("queueworker_queue_orphaned", "unstamped"): 1.0,
        ("queueworker_queue_orphaned", "idle"): 0.0,
        ("queueworker_queue_completed_total", "emails"): 17.0,
        ("queueworker_queue_completed_total", "unstamped"): 0.0,
        ("queueworker_queue_completed_total", "idle"): 0.0,
        ("queueworker_queue_target_wait_seconds", "emails"): 30.0,
        ("queueworker_broker_up", ""): 1.0,
    }
    assert got[("queueworker_scrape_duration_seconds", "")] > 0
    assert "# TYPE queueworker_queue_completed_total counter" in text
    promtool_check(text)


def test_fast_exposition_matches_prometheus_client(redis_client: redis.Redis) -> None:
    """The exporter writes its exposition itself (fast at 10,000 queues): same samples, promtool-clean,
    label values escaped."""
    odd = 'we"ird\\queue\nname'
    for queue in ("emails", odd):
        redis_client.lpush(queue, message(queue, NOW - 5.25))
    redis_client.hset(keys.TARGETS_HASH, odd, json.dumps({"targetWaitSeconds": 2.5}))
    collector = QueueCollector(redis_client, ["emails", odd, "idle"], clock=lambda: NOW)
    registry = CollectorRegistry()
    registry.register(collector)
    from prometheus_client import generate_latest

    reference = samples(generate_latest(registry).decode())
    text = render(collector.scrape())
    ours = samples(text)
    assert ours.keys() == reference.keys()
    assert {k: v for k, v in ours.items() if k[0] != "queueworker_scrape_duration_seconds"} == {
        k: v for k, v in reference.items() if k[0] != "queueworker_scrape_duration_seconds"
    }
    assert ours[("queueworker_queue_oldest_wait_seconds", odd)] == 5.25
    promtool_check(text)
    down = render(Scrape(None, 0.25))
    assert samples(down) == {
        ("queueworker_broker_up", ""): 0.0,
        ("queueworker_scrape_duration_seconds", ""): 0.25,
    }
    promtool_check(down)


def test_options_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from queueworker.cli import exporter as command

    parser = argparse.ArgumentParser()
    command.register(parser.add_subparsers())
    monkeypatch.delenv("QUEUEWORKER_REDIS_URL", raising=False)
    monkeypatch.setenv("QUEUEWORKER_BROKER_URL", "redis://broker:1/0")
    args = parser.parse_args(["exporter"])
    assert (args.port, resolve(args)) == (9808, ("redis://broker:1/0", [], True))
    monkeypatch.setenv("QUEUEWORKER_REDIS_URL", "redis://env:2/0")
    args = parser.parse_args(["exporter", "--queues", "a,b", "c", "a"])
    assert resolve(args) == ("redis://env:2/0", ["a", "b", "c"], False)
    args = parser.parse_args(["exporter", "--queues", "a", "--discover", "--redis-url", "redis://x:3/1"])
    assert resolve(args) == ("redis://x:3/1", ["a"], True)
    assert resolve(parser.parse_args(["exporter", "--no-discover"]))[2] is False


@pytest.fixture
def protected() -> Iterator[RedisServer]:
    """A password-protected Redis this test may stop and start again."""
    server = RedisServer(password=PASSWORD).start()
    yield server
    server.stop()


def start_cli(url: str, port: int, *extra: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "QUEUEWORKER_REDIS_URL": url, "PYTHONUNBUFFERED": "1"}
    with log.open("wb") as out:
        command = [
            sys.executable,
            "-m",
            "queueworker.cli",
            "exporter",
            "--port",
            str(port),
            "--address",
            "127.0.0.1",
            *extra,
        ]
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def test_cli_survives_the_broker_going_away_and_never_shows_the_password(protected: RedisServer) -> None:
    client = protected.client()
    client.lpush("emails", message("emails", time.time()))
    client.lpush(f"bulk{keys.PRIORITY_SEP}9", message("bulk", time.time()))
    client.sadd(f"{keys.BINDING_PREFIX}emails", f"emails{keys.PRIORITY_SEP}{keys.PRIORITY_SEP}emails")
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="qw-exporter-")) / "exporter.log"
    proc = start_cli(protected.url, port, "--queues", "bulk", "--discover", log=log)
    try:
        assert PASSWORD not in " ".join(proc.args)  # type: ignore[arg-type]
        text = wait_for(lambda: _try_scrape(port), 30, message="exporter serving")
        assert isinstance(text, str)
        got = samples(text)
        assert got[("celery_queue_length", "emails")] == 1.0
        assert got[("celery_queue_length", "bulk")] == 1.0
        assert got[("queueworker_broker_up", "")] == 1.0
        promtool_check(text)
        assert scrape(port, "/healthz") == "ok\n"
        with pytest.raises(urllib.error.HTTPError, match="404"):
            scrape(port, "/favicon.ico")
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/metrics", headers={"Accept-Encoding": "gzip"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.headers["Content-Encoding"] == "gzip"
            unzipped = samples(gzip.decompress(response.read()).decode())
        assert unzipped[("celery_queue_length", "emails")] == 1.0

        protected.stop()
        text = scrape(port)
        got = samples(text)
        assert got[("queueworker_broker_up", "")] == 0.0
        assert [name for name, _ in got] == ["queueworker_broker_up", "queueworker_scrape_duration_seconds"]
        promtool_check(text)
        assert scrape(port, "/healthz") == "ok\n"

        protected.start()
        got = samples(scrape(port))
        assert got[("queueworker_broker_up", "")] == 1.0
        assert got[("celery_queue_length", "bulk")] == 0.0  # a fresh server, read for real: empty now
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = log.read_text()
    assert "broker unreachable" in output
    assert "broker reachable" in output
    assert "***" in output
    assert PASSWORD not in output


def _try_scrape(port: int) -> str | None:
    try:
        return scrape(port)
    except OSError:
        return None


def test_wrong_password_is_broker_down_without_the_password_in_sight(protected: RedisServer) -> None:
    client = redis_client(f"redis://:{PASSWORD}-wrong@127.0.0.1:{protected.port}/0")
    registry = CollectorRegistry()
    registry.register(QueueCollector(client, ["emails"]))
    from prometheus_client import generate_latest

    text = generate_latest(registry).decode()
    assert samples(text)[("queueworker_broker_up", "")] == 0.0
    assert "celery_queue_length" not in text
    assert PASSWORD not in text


def test_a_server_error_is_logged_with_its_message(
    redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    redis_client.set(keys.TARGETS_HASH, "not a hash")  # what a script cannot read
    registry = CollectorRegistry()
    registry.register(QueueCollector(redis_client, ["emails"]))
    from prometheus_client import generate_latest

    with caplog.at_level("WARNING", logger="queueworker.exporter"):
        text = generate_latest(registry).decode()
    assert samples(text)[("queueworker_broker_up", "")] == 0.0
    assert "celery_queue_length" not in text
    assert "ResponseError" in caplog.text
    assert "WRONGTYPE" in caplog.text
