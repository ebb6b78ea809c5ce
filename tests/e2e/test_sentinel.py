"""Broker failover on the cluster. The release is upgraded to `redis.mode: sentinel` (TLS stays on, the
default) with tasks queued, which must survive the upgrade; then a producer pod publishes a steady burst
through a make_app app while the primary's pod is deleted three times. Every acknowledged publish must run
(the producer exits 0 only when all were acknowledged), nothing may stay queued, and every worker keeps
consuming in the same pod without a restart."""

from __future__ import annotations

import functools
import re
import threading
import time
import uuid
from typing import Any

import pytest

from hack import deploy
from tests.e2e.cluster import (
    REDIS_TLS,
    broker_ca_volume,
    client_pod,
    exec_in,
    pods,
    restricted_container,
    run_to_completion,
    wait_for,
)
from tests.e2e.conftest import Release, report
from tests.e2e.flows import GROUP, PLURAL, VERSION, apply_queueworker, depth, worker_pods

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

QUEUE = "failover"
TASKS = 600
#: Published to the standalone Redis before the upgrade to sentinel mode.
QUEUED = 20
#: Seconds between two publishes: the burst lasts about as long as three failovers and recoveries.
PAUSE = 0.15
FAILOVERS = 3

STEADY = """
import sys, time
from tasks import app
count, pause, queue = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
for i in range(count):
    result = app.send_task("tasks.taskA", args=[0.05], queue=queue)  # returns once a replica holds it (WAIT)
    print(f"acknowledged {result.id}", flush=True)
    time.sleep(pause)
print(f"published {count}", flush=True)
"""


SUCCEEDED = re.compile(r"Task tasks\.taskA\[([0-9a-f-]+)\] succeeded")


def ran(release: Release) -> list[str]:
    """The ids of every taskA the failover workers finished, from their logs (each container's whole log:
    the test also asserts that none restarted)."""
    ids: list[str] = []
    for pod in worker_pods(release, "failover"):
        log = release.cluster.core.read_namespaced_pod_log(
            pod.metadata.name, release.namespace, container="worker"
        )
        ids += SUCCEEDED.findall(str(log))
    return ids


def sentinel_cli(release: Release, *args: str) -> str:
    """redis-cli against a sentinel, from the sentinel pod, with the sentinels' password and TLS."""
    script = (
        'REDISCLI_AUTH="$(cat /run/secrets/sentinel/password)"; export REDISCLI_AUTH; '
        f'if [ -f {REDIS_TLS}/ca.crt ]; then set -- --tls --cacert {REDIS_TLS}/ca.crt "$@"; fi; '
        'exec redis-cli --no-auth-warning -p 26379 "$@"'
    )
    pod = f"{release.fullname}-redis-sentinel-0"
    return exec_in(
        release.cluster, release.namespace, pod, "sentinel", ["/bin/sh", "-c", script, "cli", *args]
    )


def primary(release: Release) -> str | None:
    """The data pod the sentinels name as primary now (None while they name none or an unknown address)."""
    answer = sentinel_cli(release, "sentinel", "get-master-addr-by-name", "mymaster").split()
    if not answer:
        return None
    for pod in pods(release.cluster, release.namespace, "app.kubernetes.io/component=redis"):
        if answer[0] in (pod.status.pod_ip, pod.metadata.name) or answer[0].startswith(
            f"{pod.metadata.name}."
        ):
            return str(pod.metadata.name)
    return None


def another_primary(release: Release, old: str) -> str | None:
    now = primary(release)
    return now if now is not None and now != old else None


def recreated(release: Release, name: str, uid: str) -> bool:
    """The StatefulSet's new pod `name` (not the deleted one, `uid`) is ready."""
    pod = release.cluster.core.read_namespaced_pod(name, release.namespace)
    return bool(pod.metadata.uid != uid and ready(release, name))


def ready(release: Release, name: str) -> bool:
    pod = release.cluster.core.read_namespaced_pod(name, release.namespace)
    return bool(pod.status.container_statuses) and all(s.ready for s in pod.status.container_statuses)


def producer(release: Release, count: int = TASKS, pause: float = PAUSE) -> dict[str, Any]:
    ca_volume, ca_mount = broker_ca_volume()
    env = [
        {
            "name": "QUEUEWORKER_BROKER_URL",
            "valueFrom": {"secretKeyRef": {"name": "queueworker-broker", "key": "url"}},
        },
        {
            "name": "QUEUEWORKER_SENTINEL_MASTER",
            "valueFrom": {
                "secretKeyRef": {"name": "queueworker-broker", "key": "sentinel-master", "optional": True}
            },
        },
        {
            "name": "QUEUEWORKER_SENTINEL_PASSWORD",
            "valueFrom": {
                "secretKeyRef": {"name": "queueworker-broker", "key": "sentinel-password", "optional": True}
            },
        },
    ]
    command = ["python", "-c", STEADY, str(count), str(pause), QUEUE]
    container = restricted_container(
        "publish",
        f"queueworker/worker:{release.tag}",
        command,
        env,
        [{"name": "tmp", "mountPath": "/tmp"}, ca_mount],
    )
    return client_pod(
        f"steady-{uuid.uuid4().hex[:8]}", container, [{"name": "tmp", "emptyDir": {}}, ca_volume]
    )


def test_deleting_the_primary_three_times_loses_no_task(release: Release) -> None:
    cluster, ns = release.cluster, release.namespace
    # Queued before the upgrade from standalone, with no worker yet: they must survive it and run after.
    queued = set(
        re.findall(r"acknowledged ([0-9a-f-]+)", run_to_completion(cluster, ns, producer(release, QUEUED, 0)))
    )
    assert len(queued) == QUEUED
    deploy.install_or_upgrade(cluster.context, ns, release.name, release.values(redis={"mode": "sentinel"}))
    wait_for("the sentinels to name a primary", lambda: primary(release), timeout=180)
    apply_queueworker(
        release,
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "QueueWorker",
            "metadata": {"name": "failover"},
            "spec": {
                "app": "tasks:app",
                "queues": [QUEUE],
                "concurrency": 4,
                "replicas": 2,
                "autoscaling": {"mode": "off"},
            },
        },
    )
    try:
        wait_for(
            "two ready workers",
            lambda: sum(1 for p in worker_pods(release, "failover") if ready(release, p.metadata.name)) == 2,
            timeout=240,
        )
        workers = {
            p.metadata.name: p.status.container_statuses[0].restart_count
            for p in worker_pods(release, "failover")
        }
        result: dict[str, Any] = {}

        def publish() -> None:
            try:
                result["log"] = run_to_completion(cluster, ns, producer(release), timeout=900)
            except AssertionError as exc:
                result["error"] = str(exc)

        thread = threading.Thread(target=publish, name="producer")
        thread.start()
        promoted: list[float] = []
        time.sleep(10)
        for round_ in range(1, FAILOVERS + 1):
            old = primary(release)
            assert old is not None, "the sentinels name no primary"
            uid = cluster.core.read_namespaced_pod(old, ns).metadata.uid
            deleted = time.monotonic()
            cluster.core.delete_namespaced_pod(old, ns)
            new = wait_for(
                f"failover {round_}: a new primary",
                functools.partial(another_primary, release, old),
                timeout=90,
                interval=0.5,
            )
            promoted.append(time.monotonic() - deleted)
            wait_for(
                f"failover {round_}: {old} back as a replica",
                functools.partial(recreated, release, old, uid),
                timeout=180,
            )
            report(f"sentinel failover {round_}: {old} deleted, {new} promoted in {promoted[-1]:.1f} s")
        thread.join(timeout=900)
        assert "error" not in result, f"the producer failed: {result.get('error')}"
        assert f"published {TASKS}" in result.get("log", ""), result.get("log")
        acknowledged = set(re.findall(r"acknowledged ([0-9a-f-]+)", result["log"]))
        assert len(acknowledged) == TASKS, f"{len(acknowledged)} distinct acknowledged ids"
        acknowledged |= queued
        wait_for(
            f"all {TASKS + QUEUED} acknowledged tasks to run",
            lambda: acknowledged <= set(ran(release)) and depth(release, QUEUE) == 0,
            timeout=300,
            diagnose=lambda: f"{len(acknowledged - set(ran(release)))} acknowledged but not run",
        )
        executions = ran(release)
        twice = len(executions) - len(set(executions))
        report(
            f"sentinel failover: {QUEUED} queued before the upgrade from standalone and {TASKS} published "
            f"through {FAILOVERS} failovers, all acknowledged: all ran, {twice} twice"
        )
        after = {
            p.metadata.name: p.status.container_statuses[0].restart_count
            for p in worker_pods(release, "failover")
        }
        assert after == workers, f"workers restarted or were replaced: before {workers}, after {after}"
    finally:
        cluster.custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "failover")
