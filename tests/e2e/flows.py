"""What the e2e flows do on the cluster: publish from a pod as producers do, read the broker's counters
(through redis-cli in the Redis pod), find a QueueWorker's Deployment and pods, wait for a queue to drain."""

from __future__ import annotations

import json
import uuid
from typing import Any

from tests.e2e.cluster import (
    broker_ca_volume,
    client_pod,
    describe_pods,
    redis_cli,
    restricted_container,
    run_to_completion,
    wait_for,
)
from tests.e2e.conftest import Release

GROUP, VERSION, PLURAL = "queueworker.dev", "v1alpha1", "queueworkers"
PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")

PUBLISH = """
import json, sys, time
from tasks import app
task, count, args, queue = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4] or None
print(f"first publish at {time.time():.3f}", flush=True)
for _ in range(count):
    app.send_task(task, args=args, queue=queue)  # without a queue: the routes document routes it
print(f"published {count} {task}", flush=True)
"""


def redis(rel: Release, *args: str) -> str:
    return redis_cli(rel.cluster, rel.namespace, rel.redis_pod, *args)


def completed(rel: Release, queue: str) -> int:
    return int(redis(rel, "GET", f"queueworker:completed:{queue}") or 0)


def depth(rel: Release, queue: str) -> int:
    return sum(int(redis(rel, "LLEN", queue + suffix) or 0) for suffix in PRIORITY_SUFFIXES)


def unacked(rel: Release) -> int:
    return int(redis(rel, "HLEN", "unacked") or 0)


def heartbeats(rel: Release, queue: str) -> dict[str, dict[str, Any]]:
    """The workers' heartbeats on `queue`: Celery hostname -> {busy, total, ...}."""
    lines = redis(rel, "HGETALL", f"queueworker:heartbeats:{queue}").splitlines()
    return {lines[i]: json.loads(lines[i + 1]) for i in range(0, len(lines) - 1, 2)}


def worker_selector(queueworker: str) -> str:
    return f"app.kubernetes.io/instance={queueworker},app.kubernetes.io/component=worker"


def worker_deployment(rel: Release, queueworker: str) -> Any:
    items = rel.cluster.apps.list_namespaced_deployment(
        rel.namespace, label_selector=worker_selector(queueworker)
    ).items
    return items[0] if items else None


def worker_pods(rel: Release, queueworker: str) -> list[Any]:
    return list(
        rel.cluster.core.list_namespaced_pod(rel.namespace, label_selector=worker_selector(queueworker)).items
    )


def apply_queueworker(rel: Release, doc: dict[str, Any]) -> None:
    doc = {**doc, "metadata": {**doc["metadata"], "namespace": rel.namespace}}
    rel.cluster.custom.create_namespaced_custom_object(GROUP, VERSION, rel.namespace, PLURAL, doc)


def publish(
    rel: Release, task: str, count: int, args: list[Any] | None = None, queue: str | None = None
) -> float:
    """Publish from a pod in the cluster (the worker image, the broker Secret, the routes ConfigMap), as
    producers do; returns the wall-clock time of the first publish (the node's clock is this machine's)."""
    name = f"publish-{uuid.uuid4().hex[:8]}"
    ca_volume, ca_mount = broker_ca_volume()
    command = ["python", "-c", PUBLISH, task, str(count), json.dumps(args or []), queue or ""]
    container = restricted_container(
        "publish",
        f"queueworker/worker:{rel.tag}",
        command,
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
            ca_mount,
        ],
    )
    volumes = [
        {"name": "routes", "configMap": {"name": "queueworker-routes"}},
        {"name": "tmp", "emptyDir": {}},
        ca_volume,
    ]
    pod = client_pod(name, container, volumes)
    log = run_to_completion(rel.cluster, rel.namespace, pod)
    assert f"published {count} {task}" in log, log
    return float(log.split("first publish at ", 1)[1].split()[0])


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
