"""The platform on a kind cluster, in order: install the chart, apply the examples, publish a burst and see
workers scale up and every task complete, delete a worker pod mid-task and lose nothing, upgrade the
release (Redis restarts, the password and the queued tasks stay), uninstall.

Run with `make e2e` (creates the cluster and loads the images). Skips, saying why, without a kind cluster.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from hack.cluster import binaries
from tests.e2e import deploy
from tests.e2e.cluster import (
    describe_pods,
    exec_in,
    pods,
    redis_cli,
    restricted_container,
    run_to_completion,
    wait_for,
)
from tests.e2e.conftest import Release

# The flows wait minutes on the cluster (scale-down delays, a 360 s drain): past the suite default.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
GROUP, VERSION, PLURAL = "queueworker.dev", "v1alpha1", "queueworkers"
PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")

PUBLISH = """
import sys
from tasks import app
task, count, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
for _ in range(count):
    app.send_task(task, args=(seconds,))  # routed by the operator's routes document, as producers do
print(f"published {count} {task}", flush=True)
"""


def completed(rel: Release, queue: str) -> int:
    return int(
        redis_cli(rel.cluster, rel.namespace, rel.redis_pod, "GET", f"queueworker:completed:{queue}") or 0
    )


def depth(rel: Release, queue: str) -> int:
    return sum(
        int(redis_cli(rel.cluster, rel.namespace, rel.redis_pod, "LLEN", queue + suffix) or 0)
        for suffix in PRIORITY_SUFFIXES
    )


def unacked(rel: Release) -> int:
    return int(redis_cli(rel.cluster, rel.namespace, rel.redis_pod, "HLEN", "unacked") or 0)


def worker_deployment(rel: Release, queueworker: str) -> Any:
    items = rel.cluster.apps.list_namespaced_deployment(
        rel.namespace,
        label_selector=f"app.kubernetes.io/instance={queueworker},app.kubernetes.io/component=worker",
    ).items
    return items[0] if items else None


def publish(rel: Release, task: str, count: int, seconds: float) -> None:
    """Publish from a pod in the cluster: the worker image, the broker Secret, the routes ConfigMap."""
    name = f"publish-{uuid.uuid4().hex[:8]}"
    container = restricted_container(
        "publish",
        f"queueworker/worker:{rel.tag}",
        ["python", "-c", PUBLISH, task, str(count), str(seconds)],
        env=[
            {
                "name": "QUEUEWORKER_BROKER_URL",
                "valueFrom": {"secretKeyRef": {"name": "queueworker-broker", "key": "url"}},
            },
            {"name": "QUEUEWORKER_ROUTES_FILE", "value": "/etc/queueworker/routes/routes.json"},
        ],
        mounts=[
            {"name": "routes", "mountPath": "/etc/queueworker/routes", "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"queueworker.dev/broker-client": "true"}},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "containers": [container],
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "volumes": [
                {"name": "routes", "configMap": {"name": "queueworker-routes"}},
                {"name": "tmp", "emptyDir": {}},
            ],
        },
    }
    log = run_to_completion(rel.cluster, rel.namespace, pod)
    assert f"published {count} {task}" in log, log


def wait_all_done(rel: Release, queue: str, target: int, timeout: float) -> None:
    def done() -> bool:
        return completed(rel, queue) >= target and depth(rel, queue) == 0 and unacked(rel) == 0

    wait_for(
        f"{queue}: completed >= {target}, nothing queued or unacked",
        done,
        timeout,
        diagnose=lambda: (
            f"completed={completed(rel, queue)} depth={depth(rel, queue)} "
            f"unacked={unacked(rel)}\n{describe_pods(rel.cluster, rel.namespace)}"
        ),
    )


def test_platform_is_installed(release: Release) -> None:
    cluster, ns = release.cluster, release.namespace
    for suffix in ("operator", "exporter"):
        deployment = cluster.apps.read_namespaced_deployment(f"{release.fullname}-{suffix}", ns)
        assert deployment.status.ready_replicas == 1, suffix
    sts = cluster.apps.read_namespaced_stateful_set(f"{release.fullname}-redis", ns)
    assert sts.status.ready_replicas == 1
    assert cluster.extensions.read_custom_resource_definition("queueworkers.queueworker.dev")
    # Redis refuses anyone without the password.
    answer = exec_in(cluster, ns, release.redis_pod, "redis", ["redis-cli", "ping"])
    assert "NOAUTH" in answer, answer
    assert (
        redis_cli(cluster, ns, release.redis_pod, "CONFIG", "GET", "maxmemory-policy").split()[-1]
        == "noeviction"
    )


def kubectl(rel: Release, *args: str) -> str:
    """kubectl as a user runs it (the one built with the local cluster, else the one on PATH)."""
    built = binaries.cache_dir() / f"k8s-{binaries.release()}" / "bin" / "kubectl"
    tool = str(built) if built.exists() else (shutil.which("kubectl") or "kubectl")
    out = subprocess.run([tool, f"--context={rel.cluster.context}", *args], capture_output=True, text=True,
                         timeout=60, check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout


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
    publish(release, "tasks.taskA", 40, 2.0)
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
    table = kubectl(release, "get", "qw", "-n", ns).splitlines()
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
    publish(release, "tasks.taskA", 12, 6.0)
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
    result = deploy.install_or_upgrade(
        cluster.context,
        ns,
        release.name,
        release.values(redis={"appendfsync": "always"}, operator={"driftInterval": 20}),
    )
    assert result["revision"] >= 2, result.get("status")
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
    publish(release, "tasks.taskB", 6, 1.0)
    wait_all_done(release, "for_task_B", before + 6, timeout=300)


def test_uninstall_removes_the_platform(release: Release) -> None:
    cluster, ns = release.cluster, release.namespace
    for qw in cluster.custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)["items"]:
        cluster.custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, qw["metadata"]["name"])
    wait_for(
        "QueueWorkers and their Deployments to go",
        lambda: (
            not cluster.custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)["items"]
            and not cluster.apps.list_namespaced_deployment(
                ns, label_selector="app.kubernetes.io/managed-by=queueworker-operator"
            ).items
        ),
        timeout=180,
    )
    deploy.uninstall(cluster.context, ns, release.name)
    selector = f"app.kubernetes.io/instance={release.name}"
    wait_for(
        "the release's objects to go",
        lambda: (
            not cluster.apps.list_namespaced_deployment(ns, label_selector=selector).items
            and not cluster.apps.list_namespaced_stateful_set(ns, label_selector=selector).items
            and not cluster.core.list_namespaced_service(ns, label_selector=selector).items
        ),
        timeout=180,
    )
    # Helm never deletes CRDs from crds/: QueueWorkers elsewhere survive an uninstall.
    assert cluster.extensions.read_custom_resource_definition("queueworkers.queueworker.dev")
