"""The real entry point, as a process: `kopf run -m queueworker_operator --standalone -A` (and `-n NS`)
against a real API server, with the liveness endpoint and the operator's /metrics."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import urllib.request
from collections.abc import AsyncIterator

import pytest

from tests.support.kubeapi import DEPLOYMENTS, QW
from tests.support.operator_harness import eventually
from tests.support.operator_helpers import condition, create, manifest
from tests.support.operator_process import kopf_run as kopf_command
from tests.support.redis_server import free_port


@contextlib.asynccontextmanager
async def kopf_run(env: dict[str, str], *args: str) -> AsyncIterator[asyncio.subprocess.Process]:
    process = await asyncio.create_subprocess_exec(
        *kopf_command(*args),
        env={**os.environ, **env},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), timeout=20)
            except TimeoutError:
                process.kill()
                await process.wait()


def http_get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read().decode()


def metrics_text(url: str) -> str:
    try:
        return http_get(url)[1]
    except OSError:
        return ""


async def fetch(url: str) -> tuple[int, str] | None:
    try:
        return await asyncio.to_thread(http_get, url)
    except OSError:
        return None


@pytest.mark.slow
async def test_kopf_run_all_namespaces(kube, ns, operator_env):
    liveness = free_port()
    async with kopf_run(operator_env, "-A", f"--liveness=http://127.0.0.1:{liveness}/healthz") as process:
        create(kube, manifest("cli", ns))
        await eventually(lambda: kube.read(DEPLOYMENTS, ns, "cli-worker"), timeout=60)
        await eventually(lambda: condition(kube, ns, "cli", "Ready"))
        health = None
        for _ in range(100):
            health = await fetch(f"http://127.0.0.1:{liveness}/healthz")
            if health and "autoscaler_tick_age" in health[1]:
                break
            await asyncio.sleep(0.2)
        assert health is not None and health[0] == 200
        assert "autoscaler_tick_age" in json.loads(health[1])
        # Ready may come from the worker Deployment's event while the reconcile that made it still runs
        scrape = f"http://127.0.0.1:{operator_env['QUEUEWORKER_METRICS_PORT']}/metrics"
        await eventually(lambda: 'queueworker_reconciles_total{result="ok"}' in metrics_text(scrape))
        assert process.returncode is None
    assert process.returncode == 0


@pytest.mark.slow
async def test_kopf_run_one_namespace(kube, ns, other_ns, operator_env):
    async with kopf_run(operator_env, "-n", ns):
        create(kube, manifest("outside", other_ns))
        create(kube, manifest("inside", ns))
        await eventually(lambda: kube.read(DEPLOYMENTS, ns, "inside-worker"), timeout=60)
        await eventually(lambda: condition(kube, ns, "inside", "Ready"))
    assert kube.read(DEPLOYMENTS, other_ns, "outside-worker") is None
    outside = kube.read(QW, other_ns, "outside")
    assert not outside["metadata"].get("finalizers"), "the operator touched another namespace"
    assert not [k for k in outside["metadata"].get("annotations") or {} if k.startswith("queueworker.dev/")]


@pytest.mark.slow
async def test_bad_configuration_exits_with_the_reason(kube, operator_env):
    operator_env["QUEUEWORKER_AUTOSCALE_INTERVAL"] = "soon"
    process = await asyncio.create_subprocess_exec(
        *kopf_command("-A"),
        env={**os.environ, **operator_env},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode != 0
    assert "QUEUEWORKER_AUTOSCALE_INTERVAL" in stderr.decode()
    assert operator_env["QUEUEWORKER_REDIS_URL"] not in stderr.decode()
