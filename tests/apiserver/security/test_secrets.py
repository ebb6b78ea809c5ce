"""No secret leaks: with a sentinel Redis password, nothing that a user, a log pipeline or a metrics
scraper sees holds it — the logs of the worker, beat, exporter, operator and `qw up` (through a broker
outage, which makes them log connection errors), the QueueWorker's status and Events, the metrics of
worker, exporter and operator (names, labels, values), and `qw status`. The rendered side — ConfigMaps
and pod templates from `qw render` and the chart — is in test_secret_refs.py."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.redis.beat.test_beat import start_beat
from tests.support.celery_worker import EXAMPLES, REPO, WORKERS, CeleryWorker, write_task_module
from tests.support.control_plane import Server
from tests.support.kubeapi import EVENTS, QW
from tests.support.operator_harness import eventually
from tests.support.operator_helpers import create, manifest
from tests.support.operator_process import OperatorProcess
from tests.support.redis_server import RedisServer, free_port

SENTINEL = "Sntl-9f2c1d7e-pw"
SCHEDULES = [{"name": "tick", "task": "qwtasks.record", "every": "2s", "args": ["beat"]}]


def scrape(port: int) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()


def env_with(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "operator"), str(WORKERS)]),
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_the_broker_password_never_shows(kube_server: Server, ns: str, tmp_path: Path) -> None:
    (tmp_path / "redis").mkdir()
    broker = RedisServer(password=SENTINEL, workdir=tmp_path / "redis", appendonly="yes").start()
    url = broker.url
    assert SENTINEL in url
    write_task_module(tmp_path / "mod")
    ports = {name: free_port() for name in ("worker", "exporter", "operator", "up_exporter")}
    procs: list[subprocess.Popen[bytes]] = []
    worker = CeleryWorker(
        "qwtasks",
        ["secret_q"],
        broker_url=url,
        pythonpath=[tmp_path / "mod"],
        metrics_port=ports["worker"],
        workdir=tmp_path / "worker",
    )
    logs = {"exporter": tmp_path / "exporter.log", "up": tmp_path / "up.log"}
    settings = {
        "QUEUEWORKER_REDIS_URL": url,
        "QUEUEWORKER_AUTOSCALE_INTERVAL": "1",
        "QUEUEWORKER_METRICS_PORT": str(ports["operator"]),
    }
    operator = OperatorProcess(kube_server.kubeconfig, settings, tmp_path / "operator.log", namespaces=[ns])
    try:
        worker.start()
        operator.start()
        beat, beat_log = start_beat(url, tmp_path)
        procs.append(beat)
        with logs["exporter"].open("wb") as out:
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "queueworker.cli",
                        "exporter",
                        "--port",
                        str(ports["exporter"]),
                        "--address",
                        "127.0.0.1",
                    ],
                    env=env_with(QUEUEWORKER_REDIS_URL=url),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )
        with logs["up"].open("wb") as out:
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "queueworker.cli",
                        "up",
                        "-f",
                        str(EXAMPLES / "default.yaml"),
                        "--redis-url",
                        url,
                        "--plain",
                        "--log-level",
                        "debug",
                        "--duration",
                        "40",
                        "--state-dir",
                        str(tmp_path / "qw-state"),
                        "--exporter-port",
                        str(ports["up_exporter"]),
                    ],
                    env=env_with(),
                    cwd=tmp_path,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )
        await asyncio.to_thread(worker.wait_ready, 60)
        autoscaling = {"mode": "builtin", "minReplicas": 1, "maxReplicas": 3}
        create(
            kube_server.api,
            manifest("secret-q", ns, schedules=SCHEDULES, queues=["secret_q"], autoscaling=autoscaling),
        )
        await eventually(
            lambda: (kube_server.api.read(QW, ns, "secret-q") or {}).get("status", {}).get("conditions"),
            timeout=60,
        )
        client = broker.client()
        await eventually(lambda: client.llen("test:executions") >= 1, timeout=60)  # beat -> worker ran

        broker.stop()  # an outage: everyone logs connection errors now
        await asyncio.sleep(2)
        down = await asyncio.to_thread(scrape, ports["exporter"])  # the exporter probes at each scrape
        texts = {"exporter metrics, broker down": down}
        await asyncio.sleep(2)
        broker.start()
        await eventually(lambda: broker.client().llen("test:executions") >= 3, timeout=90)
        await asyncio.sleep(2)
        texts |= {
            "worker metrics": scrape(ports["worker"]),
            "exporter metrics": scrape(ports["exporter"]),
            "operator metrics": scrape(ports["operator"]),
            "qw up exporter metrics": scrape(ports["up_exporter"]),
        }
        status = subprocess.run(
            [
                sys.executable,
                "-m",
                "queueworker.cli",
                "status",
                "--redis-url",
                url,
                "--state-dir",
                str(tmp_path / "qw-state"),
            ],
            env=env_with(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        texts["qw status"] = status.stdout + status.stderr
        texts["status and Events"] = json.dumps(
            [kube_server.api.read(QW, ns, "secret-q"), kube_server.api.live(EVENTS, ns)]
        )
    finally:
        worker.stop(timeout=10)
        operator.stop()
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        broker.stop()
    texts |= {
        "worker log": worker.log(),
        "beat log": beat_log.read_text(errors="replace"),
        "operator log": operator.log(),
        "exporter log": logs["exporter"].read_text(errors="replace"),
        "qw up output": logs["up"].read_text(errors="replace"),
    }
    sizes = {name: len(text) for name, text in texts.items()}
    print(f"\n[security] searched for the sentinel password in: {sizes}")
    leaks = {
        name: [line for line in text.splitlines() if SENTINEL in line][:3]
        for name, text in texts.items()
        if SENTINEL in text
    }
    assert not leaks, leaks
    for name, text in texts.items():
        assert text.strip(), f"{name} is empty: nothing was checked"
    # the outage was seen (so the error paths, where URLs tend to leak, were exercised)
    assert "broker unreachable" in texts["exporter log"]
    assert "queueworker_broker_up 0" in texts["exporter metrics, broker down"]
    assert "127.0.0.1" in texts["worker log"]
