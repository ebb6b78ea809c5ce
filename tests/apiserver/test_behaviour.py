"""The CRD behaves on a real API server as kubectl users and the operator assume: defaults filled in
as stored, the scale subresource, status separated from spec, printer columns, explain and wait."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import pytest
from queueworker.api.spec import parse_manifest
from queueworker_operator.status import Cond, merged_status, now_iso, status_patch

from tests.apiserver.conftest import Server
from tests.support.cases import load_cases
from tests.support.verdicts import dry_run

CASES = {c.id: c for c in load_cases()}
NAMESPACE = "qw-behaviour"


@pytest.fixture(scope="module")
def server(crd_server: Server) -> Iterator[Server]:
    crd_server.kubectl("create", "namespace", NAMESPACE)
    yield crd_server


def create(server: Server, obj: dict[str, Any]) -> dict[str, Any]:
    obj = {**obj, "metadata": {**obj["metadata"], "namespace": NAMESPACE}}
    server.kubectl("create", "-f", "-", stdin=json.dumps(obj), check=True)
    return server.get("qw", obj["metadata"]["name"], "-n", NAMESPACE)


def patch(server: Server, name: str, body: str, status: bool = False, check: bool = True) -> Any:
    """A merge patch of the QueueWorker (of its /status with `status`), as `kubectl patch` sends it."""
    where = ["--subresource=status"] if status else []
    return server.kubectl(
        "patch", "qw", name, "-n", NAMESPACE, *where, "--type=merge", "-p", body, check=check
    )


def delete(server: Server, name: str) -> None:
    server.kubectl("delete", "qw", name, "-n", NAMESPACE, "--wait=false")


@pytest.mark.parametrize("case_id", [i for i, c in CASES.items() if c.valid])
def test_stored_values_equal_model_values(server: Server, case_id: str) -> None:
    """What the API server stores after pruning and defaulting is what the model parsed, field by field."""
    obj = CASES[case_id].obj
    stored_obj, paths, message = dry_run(server.api, NAMESPACE, obj)
    assert stored_obj is not None, (paths, message)
    stored, qw = stored_obj["spec"], parse_manifest(obj).spec
    auto, shutdown = stored["autoscaling"], stored["shutdown"]
    assert (stored["concurrency"], stored["pool"], stored["prefetchMultiplier"]) == (
        qw.concurrency, qw.pool, qw.prefetch_multiplier)  # fmt: skip
    assert (stored["maxTasksPerChild"], stored["replicas"]) == (qw.max_tasks_per_child, qw.replicas)
    assert (auto["mode"], auto["minReplicas"], auto["maxReplicas"]) == (
        qw.autoscaling.mode, qw.autoscaling.min_replicas, qw.autoscaling.max_replicas)  # fmt: skip
    assert math.isclose(auto["targetWaitSeconds"], qw.autoscaling.target_wait_seconds)
    assert auto["scaleDownDelaySeconds"] == qw.autoscaling.scale_down_delay_seconds
    assert shutdown["gracePeriodSeconds"] == qw.shutdown.grace_period_seconds
    assert tuple(stored["queues"]) == qw.queues
    assert tuple(stored.get("routes", ())) == qw.routes
    assert stored.get("image") == qw.image
    for raw, parsed in zip(stored.get("schedules", []), qw.schedules, strict=True):
        assert raw["name"] == parsed.name and raw["task"] == parsed.task
        assert raw["enabled"] == parsed.enabled
        assert raw.get("queue", qw.queues[0]) == parsed.queue
        assert raw.get("cron") == parsed.cron
        assert (raw.get("every") is None) == (parsed.every is None)


def model_autoscaling(spec: Any) -> dict[str, Any]:
    """The spec model's autoscaling settings (a parsed QueueWorker spec) as the CRD spells them."""
    auto = spec.autoscaling
    return {
        "mode": auto.mode,
        "minReplicas": auto.min_replicas,
        "maxReplicas": auto.max_replicas,
        "targetWaitSeconds": auto.target_wait_seconds,
        "scaleDownDelaySeconds": auto.scale_down_delay_seconds,
    }


def test_minimal_gets_the_model_defaults(server: Server) -> None:
    obj = CASES["valid/minimal"].obj
    stored = create(server, {**obj, "metadata": {"name": "defaults"}})["spec"]
    qw = parse_manifest(obj).spec
    assert stored["concurrency"] == qw.concurrency == 2
    assert stored["pool"] == qw.pool == "prefork"
    assert stored["prefetchMultiplier"] == qw.prefetch_multiplier == 1
    assert stored["maxTasksPerChild"] == qw.max_tasks_per_child == 0
    assert stored["replicas"] == qw.replicas == 1
    assert stored["autoscaling"] == model_autoscaling(qw)
    assert stored["autoscaling"] == {"mode": "builtin", "minReplicas": 1, "maxReplicas": 10,
                                     "targetWaitSeconds": 30, "scaleDownDelaySeconds": 300}  # fmt: skip
    assert (
        stored["shutdown"]
        == {"gracePeriodSeconds": qw.shutdown.grace_period_seconds}
        == {"gracePeriodSeconds": 300}
    )
    delete(server, "defaults")


def _off(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "queueworker.dev/v1alpha1",
        "kind": "QueueWorker",
        "metadata": {"name": name},
        "spec": {"app": "shop.tasks:app", "queues": [name], "replicas": 1, "autoscaling": {"mode": "off"}},
    }


def _write_status(server: Server, name: str, fields: dict[str, Any], ready: bool = True) -> None:
    """A status as the operator's StatusKeeper writes it: a merge patch of /status."""
    old = server.get("qw", name, "-n", NAMESPACE).get("status", {})
    new = merged_status(
        old,
        fields,
        {"Ready": Cond(ready, "WorkersReady", "1 of 1 worker pods ready")},
        now_iso(),
        generation=1,
    )
    body = json.dumps({"status": status_patch(old, new)})
    patch(server, name, body, status=True)


def test_scale_subresource(server: Server) -> None:
    create(server, _off("scaled"))
    server.kubectl("scale", "qw/scaled", "-n", NAMESPACE, "--replicas=3", check=True)
    assert server.get("qw", "scaled", "-n", NAMESPACE)["spec"]["replicas"] == 3
    selector = "app.kubernetes.io/instance=scaled,app.kubernetes.io/component=worker"
    _write_status(server, "scaled", {"replicas": 2, "selector": selector})
    scale = server.get("qw", "scaled", "-n", NAMESPACE, "--subresource=scale")
    assert scale["kind"] == "Scale"
    assert scale["spec"] == {"replicas": 3}
    assert scale["status"] == {"replicas": 2, "selector": selector}
    delete(server, "scaled")


def test_status_is_separate_from_spec(server: Server) -> None:
    created = create(server, _off("separate"))
    generation = created["metadata"]["generation"]
    # A write of the main resource ignores status ...
    patch(server, "separate", '{"status": {"backlog": 9}, "spec": {"concurrency": 3}}')
    after = server.get("qw", "separate", "-n", NAMESPACE)
    assert "status" not in after or "backlog" not in after["status"]
    assert after["spec"]["concurrency"] == 3 and after["metadata"]["generation"] == generation + 1
    # ... and a write of /status ignores spec, without a new generation.
    patch(server, "separate", '{"status": {"backlog": 9}, "spec": {"concurrency": 5}}', status=True)
    last = server.get("qw", "separate", "-n", NAMESPACE)
    assert last["status"]["backlog"] == 9
    assert last["spec"]["concurrency"] == 3 and last["metadata"]["generation"] == generation + 1
    delete(server, "separate")


def test_operator_status_is_schema_valid_and_drives_columns_and_wait(server: Server) -> None:
    create(server, _off("columns"))
    _write_status(
        server,
        "columns",
        {
            "observedGeneration": 1,
            "replicas": 1,
            "readyReplicas": 1,
            "desiredReplicas": 2,
            "backlog": 17,
            "reserved": 3,
            "oldestWaitSeconds": 4.5,
            "lastScaleTime": now_iso(),
            "lastScaleReason": "backlog 17",
            "selector": "app.kubernetes.io/instance=columns",
        },
    )
    table = server.kubectl("get", "qw", "columns", "-n", NAMESPACE, check=True).stdout.splitlines()
    header = table[0].split()
    assert header[:8] == ["NAME", "QUEUES", "MODE", "READY", "DESIRED", "BACKLOG", "OLDEST", "WAIT"]
    assert table[1].split()[:7] == ["columns", '["columns"]', "off", "1", "2", "17", "4.5"]
    short = server.kubectl("get", "qw", "-n", NAMESPACE, check=True).stdout  # the short name works
    assert "columns" in short
    server.kubectl(
        "wait", "--for=condition=Ready", "qw/columns", "-n", NAMESPACE, "--timeout=20s", check=True
    )
    _write_status(server, "columns", {}, ready=False)
    waited = server.kubectl("wait", "--for=condition=Ready", "qw/columns", "-n", NAMESPACE, "--timeout=2s")
    assert waited.returncode != 0
    delete(server, "columns")


def test_explain_reads_the_published_schema(server: Server) -> None:
    out = server.kubectl("explain", "qw.spec.autoscaling", check=True).stdout
    assert "How the number of worker pods follows the queues." in out
    assert "targetWaitSeconds" in out and "minReplicas" in out
    field = server.kubectl("explain", "queueworker.spec.schedules.cron", check=True).stdout
    assert "five cron fields" in field


def test_invalid_status_is_refused(server: Server) -> None:
    create(server, _off("badstatus"))
    body = '{"status": {"conditions": [{"type": "Ready", "status": "Maybe"}]}}'
    result = patch(server, "badstatus", body, status=True, check=False)
    assert result.returncode != 0 and "status.conditions[0].status" in result.stderr, result.stderr
    delete(server, "badstatus")
