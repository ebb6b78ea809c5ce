"""kubectl as users run it against the real server, with the operator at work: printer columns (test_kind),
`kubectl scale` through the scale subresource, `describe` with conditions and the operator's Events,
`explain`, `wait --for=condition=Ready`; the restricted Pod Security Standard enforced and every pod of the
platform admitted; the operator's RBAC refusing what it does not need; its writes named by a field
manager, other managers' fields left alone, and its own fields restored when changed by hand."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.cluster import describe_pods, wait_for
from tests.e2e.conftest import Release
from tests.e2e.flows import worker_deployment

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


def get_scale(release: Release) -> Any:
    return json.loads(
        release.cluster.kubectl(
            "get", "--subresource=scale", "qw/default", "-n", release.namespace, "-o", "json"
        ).stdout
    )


def test_kubectl_scale_goes_through_the_scale_subresource(release: Release) -> None:
    cluster, ns = release.cluster, release.namespace
    out = cluster.kubectl("scale", "qw/default", "--replicas=2", "-n", ns).stdout
    assert "scaled" in out, out
    scale = get_scale(release)
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 2, scale
    wait_for(
        "the default QueueWorker's workers at 2, ready",
        lambda: (d := worker_deployment(release, "default")) and d.status.ready_replicas == 2,
        timeout=240,
        diagnose=lambda: describe_pods(cluster, ns),
    )
    wait_for(
        "status.replicas 2 on the scale subresource",
        lambda: get_scale(release)["status"].get("replicas") == 2,
        timeout=60,
    )
    selector = get_scale(release)["status"]["selector"]
    names = cluster.kubectl("get", "pods", "-n", ns, "-l", selector, "-o", "name").stdout.split()
    assert len(names) == 2, (selector, names)  # the selector the scale subresource publishes finds them
    cluster.kubectl("scale", "qw/default", "--replicas=1", "-n", ns)
    wait_for(
        "the default QueueWorker back at 1",
        lambda: worker_deployment(release, "default").status.replicas == 1,
        timeout=180,
    )


def test_kubectl_wait_describe_and_explain(release: Release) -> None:
    cluster, ns = release.cluster, release.namespace
    out = cluster.kubectl("wait", "--for=condition=Ready", "qw/default", "-n", ns, "--timeout=120s").stdout
    assert "condition met" in out, out
    described = cluster.kubectl("describe", "qw/task-a", "-n", ns).stdout
    assert "Conditions:" in described and "Events:" in described, described
    for text in ("Ready", "BrokerReachable", "ScaledUp", "ScaledDown", "queueworker-operator"):
        assert text in described, f"{text!r} missing from kubectl describe:\n{described}"
    explained = cluster.kubectl("explain", "qw.spec.autoscaling").stdout
    assert "targetWaitSeconds" in explained and "How long a task may wait" in explained, explained
    fields = cluster.kubectl("explain", "queueworkers.spec", "--recursive").stdout
    assert "schedules" in fields and "gracePeriodSeconds" in fields, fields


def test_pod_security_restricted_is_enforced_and_every_pod_admitted(release: Release) -> None:
    cluster, ns = release.cluster, release.namespace
    labels = cluster.core.read_namespace(ns).metadata.labels
    assert labels.get("pod-security.kubernetes.io/enforce") == "restricted", labels
    # Enforcement is on: a pod without the restricted settings is refused by the API server.
    refused = cluster.kubectl(
        "run",
        "psa-check",
        f"--image=queueworker/worker:{release.tag}",
        "--restart=Never",
        "--dry-run=server",
        "-n",
        ns,
        check=False,
    )
    assert refused.returncode != 0 and "violates PodSecurity" in refused.stderr, refused.stderr
    # Every controller of the platform and of the operator got the pods it asked for.
    events = json.loads(cluster.kubectl("get", "events", "-n", ns, "-o", "json").stdout)["items"]
    denied = [e["message"] for e in events if "PodSecurity" in (e.get("message") or "")]
    assert not denied, denied

    def short() -> list[str]:
        owners = [
            *cluster.apps.list_namespaced_replica_set(ns).items,
            *cluster.apps.list_namespaced_stateful_set(ns).items,
        ]
        return [o.metadata.name for o in owners if (o.status.replicas or 0) != (o.spec.replicas or 0)]

    wait_for(
        "every ReplicaSet and StatefulSet to have its pods",
        lambda: not short(),
        timeout=120,
        diagnose=lambda: f"short: {short()}\n{describe_pods(cluster, ns)}",
    )
    pods = cluster.core.list_namespaced_pod(ns).items
    components = {p.metadata.labels.get("app.kubernetes.io/component") for p in pods}
    assert {"operator", "exporter", "redis", "worker", "beat"} <= components, components


def test_the_operator_cannot_do_what_its_role_does_not_grant(release: Release) -> None:
    cluster, ns, sa = release.cluster, release.namespace, release.operator_user
    for verb, what in (
        ("get", "secrets"),
        ("list", "secrets"),
        ("delete", "nodes"),
        ("create", "pods"),
        ("update", "deployments"),
        ("create", "clusterrolebindings"),
        ("escalate", "roles"),
    ):
        answer = cluster.kubectl("auth", "can-i", verb, what, "-n", ns, f"--as={sa}", check=False)
        assert answer.stdout.strip() == "no", f"the operator may {verb} {what}: {answer.stdout}"
    tried = cluster.kubectl("get", "secrets", "-n", ns, f"--as={sa}", check=False)
    assert tried.returncode != 0 and "Forbidden" in tried.stderr, tried.stderr
    granted = cluster.kubectl("auth", "can-i", "--list", "-n", ns, f"--as={sa}").stdout.splitlines()[1:]
    rules = [line.split() for line in granted if line and not line[0].isspace()]  # not non-resource URLs
    wildcards = [r for r in rules if "*" in r[0] or "*" in r[-1]]
    assert rules and not wildcards, granted
    needed = (("patch", "deployments/scale"), ("patch", "queueworkers/status"), ("create", "events"))
    for verb, what in needed:
        assert cluster.kubectl("auth", "can-i", verb, what, "-n", ns, f"--as={sa}").stdout.strip() == "yes"


def test_writes_carry_a_field_manager_and_leave_other_managers_alone(release: Release) -> None:
    cluster, ns = release.cluster, release.namespace
    name = worker_deployment(release, "default").metadata.name
    shown = json.loads(
        cluster.kubectl("get", "deployment", name, "-n", ns, "-o", "json", "--show-managed-fields").stdout
    )
    managers = {entry["manager"] for entry in shown["metadata"]["managedFields"]}
    assert "queueworker-operator" in managers, managers
    # Someone else's annotation stays; a field the operator owns, changed by hand, is put back (drift).
    cluster.kubectl("annotate", "deployment", name, "-n", ns, "example.dev/owner=platform-team")
    cluster.kubectl("patch", "pdb", name, "-n", ns, "--type=merge", "-p", '{"spec":{"maxUnavailable":3}}')
    wait_for(
        "the operator to restore the PodDisruptionBudget",
        lambda: cluster.policy.read_namespaced_pod_disruption_budget(name, ns).spec.max_unavailable == 1,
        timeout=180,
    )
    annotations = cluster.apps.read_namespaced_deployment(name, ns).metadata.annotations or {}
    assert annotations.get("example.dev/owner") == "platform-team", annotations
