"""The operator's RBAC is least privilege: each rule it gets is listed here with the reason it is needed,
and the rendered (Cluster)Roles hold exactly these rules, no wildcard, no Secret access."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.rendering import NAMESPACE, RELEASE, find, one, render

ANY_WRITE = ("get", "list", "watch", "create", "patch", "delete")

#: (apiGroup, resource) -> (verbs, why). The operator's writes are server-side apply (the `patch` verb,
#: and `create` when the apply creates the object), JSON merge and JSON patches, delete, and Event
#: creates (kube.py); nothing PUTs, so no rule has `update`.
Table = dict[tuple[str, str], tuple[tuple[str, ...], str]]

NAMESPACED_RULES: Table = {
    ("queueworker.dev", "queueworkers"): (
        ("get", "list", "watch", "patch"),
        "kopf watches QueueWorkers and patches its finalizer and progress annotations on them",
    ),
    ("queueworker.dev", "queueworkers/status"): (
        ("get", "patch"),
        "the operator reports replicas, backlog, wait and conditions in status",
    ),
    ("apps", "deployments"): (
        ANY_WRITE,
        "worker Deployment per QueueWorker and the beat Deployment per namespace (server-side apply: "
        "patch, and create for a new one; get when not in the watch cache; deleted when no longer "
        "needed; watched for readiness and drift)",
    ),
    ("apps", "deployments/scale"): (
        ("get", "patch"),
        "the builtin autoscaler applies worker replicas through the scale subresource (its own manager)",
    ),
    ("policy", "poddisruptionbudgets"): (
        ANY_WRITE,
        "a PDB per worker Deployment keeps voluntary evictions gradual",
    ),
    ("", "configmaps"): (ANY_WRITE, "the routes ConfigMap per namespace, read by producers and workers"),
    ("autoscaling", "horizontalpodautoscalers"): (
        ANY_WRITE,
        "autoscaling.mode=hpa emits an HPA on the worker Deployment",
    ),
    ("", "pods"): (
        ("list", "patch"),
        "idle worker pods are found and marked cheapest to delete "
        "(controller.kubernetes.io/pod-deletion-cost) before a scale-down",
    ),
    ("", "events"): (("create",), "kopf and the operator post core/v1 Events on QueueWorkers"),
}
KEDA_RULE: Table = {
    ("keda.sh", "scaledobjects"): (
        ANY_WRITE,
        "autoscaling.mode=keda emits a ScaledObject (only when keda.enabled says KEDA is installed)",
    )
}
#: Without keda.enabled: apply deletes the autoscaler of every mode a QueueWorker is not in, so a
#: ScaledObject DELETE happens even on clusters without KEDA mode; a 403 there would fail every reconcile.
KEDA_DELETE_RULE: Table = {
    ("keda.sh", "scaledobjects"): (("delete",), "reconcile removes a ScaledObject left from a previous mode")
}
CLUSTER_RULES: Table = {
    ("apiextensions.k8s.io", "customresourcedefinitions"): (
        ("list", "watch"),
        "kopf scans CRDs to discover the QueueWorker resource and follow its changes",
    ),
}
NAMESPACE_LIST_RULE: Table = {
    ("", "namespaces"): (
        ("list", "watch"),
        "with a namespace list kopf lists and watches Namespaces to "
        "start watching each one (not needed cluster-wide)",
    ),
}

Rules = dict[tuple[str, str], tuple[str, ...]]


def rules_of(role: dict[str, Any]) -> Rules:
    out: Rules = {}
    for rule in role["rules"]:
        assert "nonResourceURLs" not in rule
        assert "resourceNames" not in rule, "no rule needs resourceNames (the operator reads no Secret)"
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                assert (group, resource) not in out, f"{group}/{resource} granted twice"
                out[(group, resource)] = tuple(rule["verbs"])
    return out


def expected(*tables: Table) -> Rules:
    return {key: verbs for table in tables for key, (verbs, _why) in table.items()}


def assert_no_wildcards(role: dict[str, Any]) -> None:
    for rule in role["rules"]:
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[field], f"wildcard in {field}: {rule}"


def test_every_rule_has_a_reason() -> None:
    for table in (NAMESPACED_RULES, KEDA_RULE, KEDA_DELETE_RULE, CLUSTER_RULES, NAMESPACE_LIST_RULE):
        for (group, resource), (verbs, why) in table.items():
            assert verbs and len(why.split()) >= 5, f"{group}/{resource}"


def test_cluster_scope_grants_exactly_the_listed_rules() -> None:
    objects = render({})
    role = one(objects, "ClusterRole", "-operator")
    assert_no_wildcards(role)
    assert rules_of(role) == expected(CLUSTER_RULES, NAMESPACED_RULES, KEDA_DELETE_RULE)
    assert not find(objects, "Role")
    binding = one(objects, "ClusterRoleBinding", "-operator")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    sa = one(objects, "ServiceAccount", "-operator")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": NAMESPACE}
    ]
    deployment = one(objects, "Deployment", "-operator")
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == sa["metadata"]["name"]


def test_keda_adds_only_scaledobjects() -> None:
    role = one(
        render({"keda": {"enabled": True, "prometheusUrl": "http://p:9090"}}), "ClusterRole", "-operator"
    )
    assert rules_of(role) == expected(CLUSTER_RULES, NAMESPACED_RULES, KEDA_RULE)


@pytest.mark.parametrize("keda", [False, True])
def test_namespace_scope_grants_roles_per_namespace(keda: bool) -> None:
    values: dict[str, Any] = {"operator": {"scope": "namespaces", "namespaces": ["team-a", "team-b"]}}
    if keda:
        values["keda"] = {"enabled": True, "prometheusUrl": "http://p:9090"}
    objects = render(values)
    cluster_role = one(objects, "ClusterRole", "-operator")
    assert_no_wildcards(cluster_role)
    assert rules_of(cluster_role) == expected(CLUSTER_RULES, NAMESPACE_LIST_RULE)
    roles = find(objects, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    for role in roles:
        assert_no_wildcards(role)
        want = expected(NAMESPACED_RULES, KEDA_RULE) if keda else expected(NAMESPACED_RULES, KEDA_DELETE_RULE)
        assert rules_of(role) == want
    for binding in find(objects, "RoleBinding"):
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["subjects"][0]["namespace"] == NAMESPACE


def test_no_secret_access_and_no_escalation_paths() -> None:
    dangerous = {
        "secrets",
        "roles",
        "clusterroles",
        "rolebindings",
        "clusterrolebindings",
        "serviceaccounts",
        "pods/exec",
        "pods/attach",
        "nodes",
        "validatingwebhookconfigurations",
        "mutatingwebhookconfigurations",
        "certificatesigningrequests",
        "serviceaccounts/token",
    }
    for values in (
        {},
        {"operator": {"scope": "namespaces", "namespaces": ["a"]}},
        {"keda": {"enabled": True, "prometheusUrl": "http://p:9090"}},
    ):
        for role in find(render(values), "ClusterRole") + find(render(values), "Role"):
            for rule in role["rules"]:
                assert not set(rule["resources"]) & dangerous, rule
                assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"]), rule


def test_rbac_can_be_left_to_the_user() -> None:
    objects = render(
        {
            "operator": {
                "rbac": {"create": False},
                "serviceAccount": {"create": False, "name": "platform-operator"},
            }
        }
    )
    assert not find(objects, "ClusterRole") and not find(objects, "ServiceAccount")
    deployment = one(objects, "Deployment", "-operator")
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "platform-operator"


def test_cluster_objects_carry_the_release_in_their_names() -> None:
    for obj in render({}, name="other"):
        if obj["kind"] in ("ClusterRole", "ClusterRoleBinding"):
            assert obj["metadata"]["name"].startswith("other-")
    assert RELEASE != "other"
