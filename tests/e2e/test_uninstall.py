"""Last on the cluster: the operator was never refused a call during the whole suite (the API server's
audit log of the local cluster, and the operator's own log), then QueueWorkers go with their children and
`helm uninstall` leaves nothing of the release behind but the CRD (Helm never deletes crds/) and the
Redis data volume (a StatefulSet's claims outlive it, so queued tasks survive a reinstall)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from hack import deploy
from hack.cluster import binaries
from tests.e2e.cluster import LOCAL_CONTEXT, pods, wait_for
from tests.e2e.conftest import Release, report
from tests.e2e.flows import GROUP, PLURAL, VERSION

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

NAMESPACED = "deployments,statefulsets,replicasets,pods,services,configmaps,secrets,serviceaccounts,roles,rolebindings,networkpolicies,poddisruptionbudgets,persistentvolumeclaims"  # noqa: E501
CLUSTER_SCOPED = "clusterroles,clusterrolebindings"
#: Kinds the release or the operator makes only where the cluster serves their group.
OPTIONAL = {
    "monitoring.coreos.com": "servicemonitors,podmonitors,prometheusrules",
    "keda.sh": "scaledobjects",
}


def namespaced_kinds(release: Release) -> str:
    groups = deploy.api_groups(release.cluster.context) or set()
    extra = [kinds for group, kinds in OPTIONAL.items() if group in groups]
    return ",".join([NAMESPACED, "horizontalpodautoscalers", *extra])


def audit_events(user: str) -> list[dict[str, Any]]:
    """The local cluster's audit events of requests `user` made itself (not impersonated by an admin)."""
    path = binaries.cache_dir() / "cluster" / "audit.log"
    events = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if f'"{user}"' not in line:
            continue
        event = json.loads(line)
        if event.get("user", {}).get("username") == user:
            events.append(event)
    return events


def test_the_operator_was_never_refused(release: Release) -> None:
    cluster, ns = release.cluster, release.namespace
    for pod in pods(cluster, ns, "app.kubernetes.io/component=operator"):
        log = str(cluster.core.read_namespaced_pod_log(pod.metadata.name, ns, container="operator"))
        # the message, without the `[date time,ms]` prefix whose milliseconds can read 403
        messages = [re.sub(r"^\[[^\]]*\]", "", line) for line in log.splitlines()]
        refused = [m for m in messages if re.search(r"\b403\b|Forbidden", m)]
        assert not refused, "the operator was refused:\n" + "\n".join(refused[:20])
    if cluster.context != LOCAL_CONTEXT:
        return  # kind keeps no audit log: the operator's own log above is the record there
    events = audit_events(release.operator_user)
    writes = [e for e in events if e["verb"] in ("create", "patch", "delete")]
    assert len(writes) > 20, f"the audit log holds {len(events)} requests of the operator: is it on?"
    refused = [
        f"{e['verb']} {e.get('objectRef', {})}: {e.get('responseStatus', {}).get('code')}"
        for e in events
        if e.get("responseStatus", {}).get("code") == 403
    ]
    assert not refused, f"{len(refused)} of {len(events)} operator calls refused:\n" + "\n".join(refused[:20])
    verbs = sorted({e["verb"] for e in events})
    report(f"operator: {len(events)} API calls during the suite ({', '.join(verbs)}), none refused")


def test_uninstall_removes_the_platform(release: Release) -> None:
    cluster, ns = release.cluster, release.namespace
    kinds = namespaced_kinds(release)
    for qw in cluster.custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)["items"]:
        cluster.custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, qw["metadata"]["name"])
    managed = "app.kubernetes.io/managed-by=queueworker-operator"
    wait_for(
        "QueueWorkers and everything the operator made for them to go",
        lambda: (
            not cluster.custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)["items"]
            and not cluster.kubectl("get", kinds, "-A", "-l", managed, "-o", "name").stdout.strip()
        ),
        timeout=180,
    )
    deploy.uninstall(cluster.context, ns, release.name)
    selector = f"app.kubernetes.io/instance={release.name}"

    def left() -> list[str]:
        names = cluster.kubectl("get", kinds, "-n", ns, "-l", selector, "-o", "name").stdout.split()
        names += cluster.kubectl("get", CLUSTER_SCOPED, "-l", selector, "-o", "name").stdout.split()
        return [n for n in names if not n.startswith("persistentvolumeclaim/")]

    wait_for("the release's objects to go", lambda: not left(), timeout=180, diagnose=lambda: str(left()))
    # Helm never deletes CRDs from crds/: QueueWorkers elsewhere survive an uninstall.
    assert cluster.extensions.read_custom_resource_definition("queueworkers.queueworker.dev")
    claims = cluster.kubectl("get", "pvc", "-n", ns, "-o", "name").stdout.split()
    assert all("redis" in c for c in claims), claims
