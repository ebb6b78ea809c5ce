"""Every ci/ scenario renders with the real Helm engine, every object is valid for Kubernetes 1.28 and
1.34 (strict), helm lint --strict is clean, the output passes yamllint, and each scenario renders what
it is about."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from tests.support.rendering import (
    CHART,
    CI_VALUES,
    K8S_VERSIONS,
    NAMESPACE,
    RELEASE,
    env_of,
    find,
    load_values,
    manifest_text,
    notes,
    one,
    pod_spec,
    render,
)
from tests.support.validate import validate_object

SCENARIOS = {path.name.removesuffix("-values.yaml"): path for path in CI_VALUES}
YAMLLINT_CONFIG = Path(__file__).with_name("yamllint.yaml")


def scenario(name: str) -> list[dict[str, Any]]:
    return render(load_values(SCENARIOS[name]))


def test_the_required_scenarios_exist() -> None:
    assert {"default", "external-redis", "keda", "monitoring", "namespace-scoped"} <= set(SCENARIOS)


@pytest.mark.parametrize("values_file", CI_VALUES, ids=lambda p: p.name)
def test_scenario_renders_valid_objects(values_file: Path) -> None:
    objects = render(load_values(values_file))
    assert objects, f"{values_file.name} rendered nothing"
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "ClusterRole", "NetworkPolicy"} <= kinds
    for obj in objects:
        for version in K8S_VERSIONS:
            validate_object(obj, version)
        if obj["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            # Never the default namespace, never left to whatever namespace kubectl points at.
            assert obj["metadata"].get("namespace"), (
                f"{obj['kind']} {obj['metadata']['name']} has no namespace"
            )
    names = [(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objects]
    assert len(names) == len(set(names)), "two objects with the same kind, namespace and name"


@pytest.mark.parametrize("values_file", CI_VALUES, ids=lambda p: p.name)
def test_helm_lint_strict_is_clean(values_file: Path) -> None:
    for version in ("v1.28.0", "v1.34.0"):
        report = helm.lint(
            str(CHART), load_values(values_file), strict=True, namespace=NAMESPACE, kube_version=version
        )
        assert report["errors"] == [], report
        assert report["messages"] == [], report


@pytest.mark.parametrize("values_file", CI_VALUES, ids=lambda p: p.name)
def test_rendered_output_passes_yamllint(values_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "rendered.yaml"
    out.write_text(manifest_text(load_values(values_file)), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "yamllint", "--strict", "-c", str(YAMLLINT_CONFIG), str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_yamllint_catches_a_broken_document(tmp_path: Path) -> None:
    """The lint above can fail: the same config rejects trailing spaces and duplicate keys."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("---\napiVersion: v1 \nkind: ConfigMap\nkind: Secret\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "yamllint", "--strict", "-c", str(YAMLLINT_CONFIG), str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "trailing-spaces" in result.stdout and "key-duplicates" in result.stdout


def test_default_scenario_installs_the_whole_platform() -> None:
    objects = scenario("default")
    one(objects, "Deployment", "-operator")
    one(objects, "Deployment", "-exporter")
    one(objects, "Service", "-exporter")
    sts = one(objects, "StatefulSet", "-redis")
    assert sts["spec"]["replicas"] == 1
    one(objects, "Service", "-redis")
    headless = one(objects, "Service", "-redis-headless")
    assert headless["spec"]["clusterIP"] == "None"
    assert sts["spec"]["serviceName"] == headless["metadata"]["name"]
    one(objects, "PodDisruptionBudget", "-redis")
    for kind in ("ServiceMonitor", "PodMonitor", "PrometheusRule", "ScaledObject", "Role"):
        assert not find(objects, kind), f"{kind} rendered by default"
    assert not [o for o in find(objects, "ConfigMap") if "dashboard" in o["metadata"]["name"]]


def test_every_pod_template_selector_matches_its_labels() -> None:
    for values_file in CI_VALUES:
        for obj in render(load_values(values_file)):
            if pod_spec(obj) is None or obj["kind"] == "Pod":
                continue
            selector = obj["spec"]["selector"]["matchLabels"]
            labels = obj["spec"]["template"]["metadata"]["labels"]
            assert selector.items() <= labels.items()
            # Selectors use only the immutable subset: name, instance, component.
            assert set(selector) == {
                "app.kubernetes.io/name",
                "app.kubernetes.io/instance",
                "app.kubernetes.io/component",
            }


def test_services_select_existing_pods() -> None:
    for values_file in CI_VALUES:
        objects = render(load_values(values_file))
        templates = [o["spec"]["template"] for o in objects if pod_spec(o) is not None]
        for svc in find(objects, "Service"):
            selector = svc["spec"]["selector"]
            matched = [t for t in templates if selector.items() <= t["metadata"]["labels"].items()]
            assert len(matched) == 1, (
                f"{values_file.name}: Service {svc['metadata']['name']} selects {len(matched)}"
            )
            ports = {p["name"] for c in matched[0]["spec"]["containers"] for p in c.get("ports", [])}
            for port in svc["spec"]["ports"]:
                assert port["targetPort"] in ports


def test_external_redis_renders_no_redis_and_points_at_the_users_secret() -> None:
    objects = scenario("external-redis")
    assert not find(objects, "StatefulSet")
    assert not find(objects, "Secret"), "the user's Secret holds the URL: the chart creates none"
    values = load_values(SCENARIOS["external-redis"])
    secret, key = values["externalRedis"]["existingSecret"], values["externalRedis"]["existingSecretKey"]
    for suffix in ("-operator", "-exporter"):
        container = one(objects, "Deployment", suffix)["spec"]["template"]["spec"]["containers"][0]
        ref = env_of(container)["QUEUEWORKER_REDIS_URL"]["secretKeyRef"]
        assert ref == {"name": secret, "key": key}
    operator_env = env_of(
        one(objects, "Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0]
    )
    # The worker pods the operator creates read the same Secret in their namespace.
    assert operator_env["QUEUEWORKER_BROKER_SECRET"] == secret
    assert operator_env["QUEUEWORKER_BROKER_SECRET_KEY"] == key


def test_external_redis_url_is_stored_in_the_broker_secret() -> None:
    values = {"redis": {"enabled": False}, "externalRedis": {"url": "rediss://:pw@redis.example:6380/1"}}
    objects = render(values)
    secret = one(objects, "Secret", "queueworker-broker")
    assert base64.b64decode(secret["data"]["url"]).decode() == "rediss://:pw@redis.example:6380/1"
    assert "password" not in secret["data"]
    assert not find(objects, "StatefulSet")


def test_keda_scenario_grants_scaledobjects_and_sets_the_prometheus_url() -> None:
    values = load_values(SCENARIOS["keda"])
    objects = scenario("keda")
    role = one(objects, "ClusterRole", "-operator")
    assert any("keda.sh" in r["apiGroups"] and r["resources"] == ["scaledobjects"] for r in role["rules"])
    container = one(objects, "Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0]
    assert env_of(container)["QUEUEWORKER_PROMETHEUS_URL"] == values["keda"]["prometheusUrl"]
    default_role = one(scenario("default"), "ClusterRole", "-operator")
    keda_rules = [r for r in default_role["rules"] if "keda.sh" in r["apiGroups"]]
    assert [r["verbs"] for r in keda_rules] == [["delete"]], (
        "without KEDA only stale ScaledObjects are deleted"
    )


def test_monitoring_scenario_renders_every_integration() -> None:
    objects = scenario("monitoring")
    sm = one(objects, "ServiceMonitor")
    assert sm["spec"]["endpoints"][0]["port"] == "metrics"
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    selected = [
        s
        for s in find(objects, "Service")
        if sm["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()
        and s["metadata"]["labels"]["app.kubernetes.io/component"]
        in sm["spec"]["selector"]["matchExpressions"][0]["values"]
    ]
    assert sorted(s["metadata"]["name"].rsplit("-", 1)[1] for s in selected) == ["exporter", "operator"]
    pm = one(objects, "PodMonitor")
    assert pm["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "queueworker",
        "app.kubernetes.io/component": "worker",
    }
    assert pm["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    assert pm["spec"]["namespaceSelector"] == {"any": True}
    alerts = CHART / "files" / "alerts.yaml"
    rules = find(objects, "PrometheusRule")
    if alerts.exists():
        assert len(rules) == 1
        assert rules[0]["spec"]["groups"] == yaml.safe_load(alerts.read_text(encoding="utf-8"))["groups"]
    else:
        assert rules == []
    dashboards = sorted((CHART / "dashboards").glob("*.json"))
    maps = [c for c in find(objects, "ConfigMap") if "dashboard" in c["metadata"]["name"]]
    assert len(maps) == len(dashboards)
    for cm in maps:
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert cm["metadata"]["annotations"] == {"grafana_folder": "QueueWorker"}
        ((filename, content),) = cm["data"].items()
        assert content == (CHART / "dashboards" / filename).read_text(encoding="utf-8").rstrip("\n")


def test_dashboards_follow_the_files(tmp_path: Path) -> None:
    """Dashboards come from dashboards/*.json: a chart copy with two files renders two ConfigMaps."""
    import shutil

    copy = tmp_path / "queueworker"
    shutil.copytree(CHART, copy)
    (copy / "dashboards").mkdir(exist_ok=True)
    for old in (copy / "dashboards").glob("*.json"):
        old.unlink()
    (copy / "dashboards" / "Queue_Overview.json").write_text('{"title": "a"}\n', encoding="utf-8")
    (copy / "dashboards" / "workers.json").write_text('{"title": "b"}\n', encoding="utf-8")
    out = helm.Chart.load(str(copy)).render(
        {"monitoring": {"dashboards": {"enabled": True, "namespace": "grafana"}}},
        name=RELEASE,
        namespace=NAMESPACE,
        is_install=True,
    )
    maps = [d for text in out.values() if "grafana_dashboard" in text for d in yaml.safe_load_all(text) if d]
    assert sorted(m["metadata"]["name"] for m in maps) == [
        f"{RELEASE}-queueworker-dashboard-queue-overview",
        f"{RELEASE}-queueworker-dashboard-workers",
    ]
    assert {m["metadata"]["namespace"] for m in maps} == {"grafana"}
    assert maps[0]["data"] in ({"Queue_Overview.json": '{"title": "a"}'}, {"workers.json": '{"title": "b"}'})


def test_namespace_scoped_scenario_uses_roles_in_each_namespace() -> None:
    values = load_values(SCENARIOS["namespace-scoped"])
    watched = values["operator"]["namespaces"]
    objects = scenario("namespace-scoped")
    roles = find(objects, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == sorted(watched)
    bindings = find(objects, "RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == sorted(watched)
    for b in bindings:
        assert b["subjects"] == [
            {"kind": "ServiceAccount", "name": f"{RELEASE}-queueworker-operator", "namespace": NAMESPACE}
        ]
    cluster_role = one(objects, "ClusterRole", "-operator")
    cluster_resources = {res for r in cluster_role["rules"] for res in r["resources"]}
    assert cluster_resources == {"customresourcedefinitions", "namespaces"}
    args = one(objects, "Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert [a for a in args if a.startswith("--namespace=")] == [f"--namespace={n}" for n in watched]
    assert "--all-namespaces" not in args
    secrets = find(objects, "Secret", "queueworker-broker")
    assert sorted(s["metadata"]["namespace"] for s in secrets) == sorted([NAMESPACE, *watched])
    assert len({s["data"]["url"] for s in secrets}) == 1, "every copy carries the same URL"
    pm = one(objects, "PodMonitor")
    assert pm["spec"]["namespaceSelector"] == {"matchNames": watched}


def test_notes_tell_what_to_do_next() -> None:
    text = notes({})
    assert "kubectl apply" in text and "queueworker-broker" in text
    assert re.search(r"create secret generic queueworker-broker", text), (
        "how to give other namespaces the URL"
    )
    scoped = notes(load_values(SCENARIOS["namespace-scoped"]))
    assert "team-a, team-b" in scoped
    external = notes(load_values(SCENARIOS["external-redis"]))
    assert "You manage it" in external and "shop-redis" in external
    assert "KEDA" in notes(load_values(SCENARIOS["keda"]))


def boolean_paths(node: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = []
    for key, value in node.items():
        if isinstance(value, bool):
            found.append((*prefix, key))
        elif isinstance(value, dict):
            found.extend(boolean_paths(value, (*prefix, key)))
    return found


#: What a flipped switch needs to make sense (else the chart fails on purpose, tested in test_values).
COMPANIONS: dict[tuple[str, ...], dict[str, Any]] = {
    ("redis", "enabled"): {"externalRedis": {"existingSecret": "ext"}},
    ("operator", "serviceAccount", "create"): {"operator": {"serviceAccount": {"name": "mine"}}},
}


def with_value(path: tuple[str, ...], value: Any, base: dict[str, Any]) -> dict[str, Any]:
    out = yaml.safe_load(yaml.safe_dump(base))
    node = out
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    return out


def test_every_switch_flipped_alone_renders_valid_objects() -> None:
    """Values files nobody wrote yet: each boolean of values.yaml flipped on its own (with what it needs)
    still renders objects valid for both Kubernetes versions."""
    defaults = chart_defaults()
    paths = boolean_paths(defaults)
    assert len(paths) >= 10
    for path in paths:
        values = with_value(path, not _get(defaults, path), COMPANIONS.get(path, {}))
        objects = render(values)
        assert objects, path
        for obj in objects:
            validate_object(obj, K8S_VERSIONS[-1])


def test_everything_on_and_everything_off_render() -> None:
    everything_on = {
        "keda": {"enabled": True, "prometheusUrl": "http://prometheus:9090"},
        "operator": {
            "scope": "namespaces",
            "namespaces": ["a", "b", "c"],
            "verbose": True,
            "extraEnv": [{"name": "QUEUEWORKER_BEAT_NAME", "value": "beat"}],
            "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}],
            "nodeSelector": {"pool": "platform"},
            "priorityClassName": "high",
            "podAnnotations": {"a": "b"},
        },
        "imagePullSecrets": [{"name": "regcred"}],
        "commonLabels": {"team": "platform"},
        "monitoring": {
            k: {"enabled": True} for k in ("serviceMonitor", "podMonitor", "prometheusRule", "dashboards")
        },
        "networkPolicy": {"redisClients": [{"namespaceSelector": {"matchLabels": {"team": "shop"}}}]},
    }
    everything_off = {
        "exporter": {"enabled": False},
        "networkPolicy": {"enabled": False},
        "redis": {"enabled": False, "pdb": {"enabled": False}, "persistence": {"enabled": False}},
        "externalRedis": {"url": "redis://redis.example:6379/0"},
        "operator": {"rbac": {"create": False}, "serviceAccount": {"create": False, "name": "op"}},
    }
    for values in (everything_on, everything_off):
        objects = render(values)
        for obj in objects:
            for version in K8S_VERSIONS:
                validate_object(obj, version)
    on = render(everything_on)
    assert all(o["metadata"]["labels"]["team"] == "platform" for o in on)
    assert {o["kind"] for o in render(everything_off)} == {"Deployment", "Service", "Secret"}


def chart_defaults() -> dict[str, Any]:
    return dict(yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8")))


def _get(node: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        node = node[key]
    return node
