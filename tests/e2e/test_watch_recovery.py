"""Watches that recover: the cluster's kube-apiserver is restarted in the middle of the suite. The operator
must notice and resume within 60 s of the server answering again, without restarting itself and without
re-listing storms: on the local cluster its audit log shows at most a re-list or two per watched resource
and no per-object reads of the children."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from typing import Any

import pytest

from hack import deploy
from tests.e2e.cluster import LOCAL_CONTEXT, pods, wait_for
from tests.e2e.conftest import Release, report
from tests.e2e.flows import GROUP, PLURAL, VERSION, apply_queueworker, worker_deployment
from tests.e2e.test_uninstall import audit_events

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

#: What the operator promises: resumed this long after the API server answers again.
RESUME_WITHIN = 60.0
#: A restart invalidates the watches' resource versions at most once: kopf lists each watched resource
#: again then (a 410), never per object or in a loop.
RELISTS_PER_RESOURCE = 2
KIND_CONTROL_PLANE = "queueworker-control-plane"


def queueworker(name: str, concurrency: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "QueueWorker",
        "metadata": {"name": name},
        "spec": {
            "app": "tasks:app",
            "queues": [f"{name}_q"],
            "concurrency": concurrency,
            "autoscaling": {"mode": "builtin", "minReplicas": 0, "maxReplicas": 2},
        },
    }


def restart_apiserver(context: str) -> None:
    """Restart the API server of the local cluster (its process) or of kind (its static pod's container;
    the kubelet starts it again), and return once it answers."""
    if context == LOCAL_CONTEXT:
        out = subprocess.run(
            [sys.executable, "-m", "hack.cluster", "restart-apiserver"],
            capture_output=True,
            text=True,
            check=False,
            timeout=180,
        )
        assert out.returncode == 0, f"restarting kube-apiserver failed:\n{out.stdout}{out.stderr}"
        return
    out = subprocess.run(
        ["docker", "exec", KIND_CONTROL_PLANE, "sh", "-c", "kill $(pidof kube-apiserver)"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert out.returncode == 0, f"stopping kind's kube-apiserver failed: {out.stderr}"


def operator_restarts(release: Release) -> dict[str, int]:
    return {
        p.metadata.name: sum(s.restart_count for s in p.status.container_statuses or [])
        for p in pods(release.cluster, release.namespace, "app.kubernetes.io/component=operator")
    }


def concurrency_of(release: Release, name: str) -> str | None:
    deployment = worker_deployment(release, name)
    if deployment is None:
        return None
    container = deployment.spec.template.spec.containers[0]
    argv = [*(container.command or []), *(container.args or [])]
    return argv[argv.index("--concurrency") + 1] if "--concurrency" in argv[:-1] else None


def test_the_operator_resumes_after_the_api_server_restarts(release: Release) -> None:
    cluster = release.cluster
    apply_queueworker(release, queueworker("watch-a"))
    wait_for("watch-a's worker Deployment", lambda: worker_deployment(release, "watch-a"), timeout=120)
    before = operator_restarts(release)
    started = time.time()

    restart_apiserver(cluster.context)
    wait_for(
        "the API server to answer again",
        lambda: deploy.api_groups(cluster.context) is not None,
        timeout=120,
        interval=1.0,
    )
    answering = time.monotonic()

    # Both a new QueueWorker and a change to an existing one must be seen through the watches.
    apply_queueworker(release, queueworker("watch-b"))
    cluster.custom.patch_namespaced_custom_object(
        GROUP, VERSION, release.namespace, PLURAL, "watch-a", {"spec": {"concurrency": 3}}
    )
    wait_for(
        "the operator to act on a QueueWorker created after the restart",
        lambda: worker_deployment(release, "watch-b"),
        timeout=RESUME_WITHIN,
        interval=0.5,
    )
    wait_for(
        "the operator to act on a change made after the restart",
        lambda: concurrency_of(release, "watch-a") == "3",
        timeout=RESUME_WITHIN,
        interval=0.5,
    )
    resumed = time.monotonic() - answering
    report(f"watch recovery: the operator acted {resumed:.1f} s after the restarted API server answered")
    assert operator_restarts(release) == before, "the operator restarted along with the API server"

    for name in ("watch-a", "watch-b"):
        cluster.custom.delete_namespaced_custom_object(GROUP, VERSION, release.namespace, PLURAL, name)
    if cluster.context != LOCAL_CONTEXT:
        return  # kind keeps no audit log
    time.sleep(2)  # the audit log is written as requests complete
    since = [e for e in audit_events(release.operator_user) if _received(e) >= started]
    lists = Counter(e["objectRef"]["resource"] for e in since if e["verb"] == "list")
    gets = Counter(e["objectRef"]["resource"] for e in since if e["verb"] == "get")
    report(f"watch recovery: the operator's lists after the restart {dict(lists)}, gets {dict(gets)}")
    storms = {r: n for r, n in lists.items() if n > RELISTS_PER_RESOURCE and r != "pods"}
    assert not storms, f"re-listed more than {RELISTS_PER_RESOURCE} times per resource: {storms}"
    child_reads = sum(
        n for r, n in gets.items() if r in {"deployments", "poddisruptionbudgets", "configmaps"}
    )
    assert child_reads <= 10, f"the operator re-read its children one by one after the restart: {dict(gets)}"


def _received(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["requestReceivedTimestamp"].replace("Z", "+00:00")).timestamp()
