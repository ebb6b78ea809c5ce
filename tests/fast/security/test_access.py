"""Access, beyond tests/fast/chart (which checks the default, namespace-scoped and KEDA RBAC, the chart's own
pods against the restricted standard; the rendered Redis, run here, refusing every command of a client
without the password, and a wrong password, is in tests/redis/security/test_access.py):
- RBAC of every CI scenario: no wildcard anywhere, no access to Secrets at all (so no list/watch);
- every pod template the operator builds (worker, beat; examples and generated manifests) satisfies the
  restricted Pod Security Standard with a read-only root filesystem;
- every NetworkPolicy of every scenario selects its pods, admits only labelled pods (no empty peer, no
  namespace-wide or IP peer unless configured) and, for Redis, the operator-built worker and beat pods
  and the chart's platform pods, but not an unlabelled pod or one with look-alike labels."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from queueworker.builders import render
from queueworker.settings import Settings

from tests.fast.chart.test_operator import admitted
from tests.fast.chart.test_security import restricted_violations
from tests.fast.security.rendered import (
    built,
    chart_objects,
    chart_scenarios,
    example_queueworkers,
    pod_templates,
)
from tests.fast.unit.test_builders_property import manifests
from tests.support.rendering import NAMESPACE, find, one

SCENARIOS = list(chart_scenarios())
IDS = [name for name, _ in SCENARIOS]


@pytest.mark.parametrize(("name", "values"), SCENARIOS, ids=IDS)
def test_rbac_has_no_wildcard_and_no_secret_access(name: str, values: dict[str, Any]) -> None:
    roles = [o for o in chart_objects(values) if o["kind"] in ("ClusterRole", "Role")]
    if not (values.get("operator", {}).get("rbac", {}).get("create", True)):
        assert not roles
        return
    assert roles, name
    for role in roles:
        assert not role.get("aggregationRule"), "an aggregated role grants what others add"
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
                assert not any("*" in item for item in rule.get(field) or []), (name, rule)
            assert not {"secrets", "secrets/status"} & set(rule.get("resources") or []), rule
            assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"]), rule
    for binding in [o for o in chart_objects(values) if o["kind"] in ("ClusterRoleBinding", "RoleBinding")]:
        assert binding["roleRef"]["name"] not in ("cluster-admin", "admin", "edit"), binding
        assert all(s["kind"] == "ServiceAccount" for s in binding["subjects"]), binding


def pss_problems(objects: list[dict[str, Any]]) -> dict[str, list[str]]:
    found = {}
    for where, meta, spec in pod_templates(objects):
        problems = restricted_violations({**spec, "_annotations": meta.get("annotations") or {}})
        if problems:
            found[where] = problems
    return found


def test_operator_built_pods_of_the_examples_are_restricted() -> None:
    objects = render(example_queueworkers(), Settings())
    kinds = {where.split("/")[-1] for where, _, _ in pod_templates(objects)}
    assert any(k.endswith("-worker") for k in kinds) and "queueworker-beat" in kinds, kinds
    assert pss_problems(objects) == {}


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(manifest=manifests())
def test_operator_built_pods_of_generated_manifests_are_restricted(manifest: dict[str, Any]) -> None:
    objects = built(manifest)
    assume(objects)
    assert pss_problems(objects) == {}


def test_the_pss_check_catches_a_violation() -> None:
    objects = render(example_queueworkers(), Settings())
    worker = next(o for o in objects if o["kind"] == "Deployment")
    worker["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] = False
    assert pss_problems([worker])


@pytest.mark.parametrize(("name", "values"), SCENARIOS, ids=IDS)
def test_network_policies_admit_only_labelled_pods(name: str, values: dict[str, Any]) -> None:
    objects = chart_objects(values)
    policies = find(objects, "NetworkPolicy")
    if values.get("networkPolicy", {}).get("enabled", True) is False:
        assert not policies
        return
    assert policies, name
    configured = values.get("networkPolicy", {})  # peers the user lists are theirs to choose
    custom = [*(configured.get("redisClients") or []), *(configured.get("metricsFrom") or [])]
    for policy in policies:
        spec = policy["spec"]
        assert spec["podSelector"].get("matchLabels"), "a policy for all pods of the namespace"
        assert "Ingress" in spec["policyTypes"]
        for rule in spec.get("ingress") or []:
            if "from" not in rule:  # open to all, so only on named metrics ports
                assert rule.get("ports") and all(p["port"] == "metrics" for p in rule["ports"]), policy
                continue
            for peer in rule["from"]:
                if peer in custom:
                    continue
                assert "ipBlock" not in peer, peer
                assert (peer.get("podSelector") or {}).get("matchLabels"), f"an unlabelled peer: {peer}"
    if not find(objects, "StatefulSet"):
        return  # external Redis: no Redis policy
    redis_policy = one(objects, "NetworkPolicy", "-redis")
    namespaces = values.get("operator", {}).get("namespaces") or ["shop"]
    qws = example_queueworkers(namespace=namespaces[0])
    built_pods = [(where, meta) for where, meta, _ in pod_templates(render(qws, Settings()))]
    assert len(built_pods) >= 3
    for where, meta in built_pods:
        assert admitted(redis_policy, meta["labels"], namespaces[0]), where
    for where, meta, _ in pod_templates(objects):
        assert admitted(redis_policy, meta["labels"], NAMESPACE), where
    for outsider in (
        {},
        {"app": "queueworker"},
        {"app.kubernetes.io/component": "worker"},
        {"app.kubernetes.io/name": "queueworkers"},
        {"queueworker.dev/broker-client": "yes"},
    ):
        for namespace in (NAMESPACE, namespaces[0]):
            assert not admitted(redis_policy, outsider, namespace), (outsider, namespace)
