"""The platform on the cluster, in order: install the chart, apply the examples, publish a burst and see
workers scale up and every task complete, delete a worker pod mid-task and lose nothing, upgrade the
release (Redis restarts, the password and the queued tasks stay). test_uninstall.py ends the session.

Run with `make e2e` (on the local cluster of `make cluster-up`, or kind). Skips, saying why, without one.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from hack import deploy
from tests.e2e.cluster import (
    describe_pods,
    exec_in,
    pods,
    redis_cli,
    wait_for,
)
from tests.e2e.conftest import Release
from tests.e2e.flows import (
    GROUP,
    PLURAL,
    VERSION,
    completed,
    depth,
    publish,
    unacked,
    wait_all_done,
    worker_deployment,
)

# The flows wait minutes on the cluster (scale-down delays, a 360 s drain): past the suite default.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))


def test_platform_is_installed(release: Release) -> None:
    cluster, ns = release.cluster, release.namespace
    for suffix in ("operator", "exporter"):
        deployment = cluster.apps.read_namespaced_deployment(f"{release.fullname}-{suffix}", ns)
        assert deployment.status.ready_replicas == 1, suffix
    sts = cluster.apps.read_namespaced_stateful_set(f"{release.fullname}-redis", ns)
    assert sts.status.ready_replicas == 1
    assert cluster.extensions.read_custom_resource_definition("queueworkers.queueworker.dev")
    # Redis serves TLS only (the chart's default), and refuses anyone without the password.
    tls = ["--tls", "--cacert", "/etc/redis/tls/ca.crt"]
    answer = exec_in(cluster, ns, release.redis_pod, "redis", ["redis-cli", *tls, "ping"])
    assert "NOAUTH" in answer, answer
    plain = exec_in(cluster, ns, release.redis_pod, "redis", ["timeout", "5", "redis-cli", "ping"])
    assert "NOAUTH" not in plain and "PONG" not in plain, f"Redis answered in plaintext: {plain}"
    assert (
        redis_cli(cluster, ns, release.redis_pod, "CONFIG", "GET", "maxmemory-policy").split()[-1]
        == "noeviction"
    )


def test_examples_scale_up_and_complete(release: Release) -> None:
    cluster, ns = release.cluster, release.namespace
    for path in EXAMPLES:
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc and doc.get("kind") == "QueueWorker":
                doc["metadata"]["namespace"] = ns
                cluster.custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, doc)
    routes = wait_for(
        "the routes ConfigMap",
        lambda: cluster.core.read_namespaced_config_map("queueworker-routes", ns),
        timeout=120,
    )
    document = json.loads(routes.data["routes.json"])
    assert {"pattern": "tasks.taskA", "queue": "for_task_A"}.items() <= next(
        r for r in document["routes"] if r["queue"] == "for_task_A"
    ).items()
    wait_for(
        "the always-on default worker",
        lambda: (d := worker_deployment(release, "default")) and d.status.ready_replicas == 1,
        timeout=240,
        diagnose=lambda: describe_pods(cluster, ns),
    )
    wait_for("the task-a Deployment", lambda: worker_deployment(release, "task-a"), timeout=60)

    before = completed(release, "for_task_A")
    publish(release, "tasks.taskA", 40, [2.0])
    highest = 0
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        deployment = worker_deployment(release, "task-a")
        highest = max(highest, deployment.spec.replicas or 0)
        if completed(release, "for_task_A") >= before + 40 and depth(release, "for_task_A") == 0:
            break
        time.sleep(2)
    assert highest >= 2, f"task-a never scaled past {highest} replicas for 80 task-seconds with a 10 s target"
    wait_all_done(release, "for_task_A", before + 40, timeout=60)
    table = release.cluster.kubectl("get", "qw", "-n", ns).stdout.splitlines()
    assert table[0].split()[:5] == ["NAME", "QUEUES", "MODE", "READY", "DESIRED"], table
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert set(rows) >= {"default", "task-a", "task-b"} and rows["task-a"][2] == "builtin", table
    # Idle again: back to zero after the scale-down delay (minReplicas 0).
    wait_for(
        "task-a to scale back to zero",
        lambda: worker_deployment(release, "task-a").spec.replicas == 0,
        timeout=240,
    )


def test_deleting_a_worker_pod_mid_task_loses_nothing(release: Release) -> None:
    cluster, ns = release.cluster, release.namespace
    before = completed(release, "for_task_A")
    publish(release, "tasks.taskA", 12, [6.0])
    selector = "app.kubernetes.io/instance=task-a,app.kubernetes.io/component=worker"
    running: list[Any] = wait_for(
        "a task-a pod running tasks",
        lambda: (
            unacked(release) > 0 and [p for p in pods(cluster, ns, selector) if p.status.phase == "Running"]
        ),
        timeout=240,
        diagnose=lambda: describe_pods(cluster, ns),
    )
    victim = running[0].metadata.name
    cluster.core.delete_namespaced_pod(victim, ns)
    wait_for(
        f"{victim} to be gone",
        lambda: victim not in {p.metadata.name for p in pods(cluster, ns, selector)},
        timeout=180,
    )
    wait_all_done(release, "for_task_A", before + 12, timeout=360)


def test_upgrade_keeps_the_password_and_the_queued_tasks(release: Release) -> None:
    cluster, ns = release.cluster, release.namespace
    secret_before = cluster.core.read_namespaced_secret("queueworker-broker", ns).data
    redis_uid = cluster.core.read_namespaced_pod(release.redis_pod, ns).metadata.uid
    parked = [str(i) for i in range(5)]
    redis_cli(cluster, ns, release.redis_pod, "DEL", "e2e:parked")
    redis_cli(cluster, ns, release.redis_pod, "RPUSH", "e2e:parked", *parked)
    time.sleep(2)  # appendfsync everysec
    # A Redis config change rolls the StatefulSet (checksum/config): Redis restarts on its AOF.
    values = release.values(redis={"appendfsync": "always"}, operator={"driftInterval": 20})
    helm = deploy.helm_binary()
    assert deploy.helm_cli(cluster.context, ns, release.name, values, helm) == 0
    status = json.loads(
        subprocess.run(
            [helm, "status", release.name, "-n", ns, "--kube-context", cluster.context, "-o", "json"],
            capture_output=True,
            text=True,
            env=deploy.kubeconfig_env(cluster.context),
            check=True,
        ).stdout
    )
    assert status["version"] >= 2 and status["info"]["status"] == "deployed", status["info"]
    secret_after = cluster.core.read_namespaced_secret("queueworker-broker", ns).data
    assert secret_after == secret_before, "the generated password changed on upgrade"
    assert base64.b64decode(secret_after["password"])
    wait_for(
        "Redis to restart",
        lambda: cluster.core.read_namespaced_pod(release.redis_pod, ns).metadata.uid != redis_uid,
        timeout=120,
    )
    wait_for("Redis ready", lambda: redis_cli(cluster, ns, release.redis_pod, "PING") == "PONG", timeout=120)
    assert redis_cli(cluster, ns, release.redis_pod, "LRANGE", "e2e:parked", "0", "-1").split() == parked
    assert redis_cli(cluster, ns, release.redis_pod, "CONFIG", "GET", "appendfsync").split()[-1] == "always"
    # Workers and the operator carry on against the restarted Redis.
    before = completed(release, "for_task_B")
    publish(release, "tasks.taskB", 6, [1.0])
    wait_all_done(release, "for_task_B", before + 6, timeout=300)
