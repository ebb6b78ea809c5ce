"""The operator Deployment: one replica, Recreate, kopf's liveness endpoint, and QUEUEWORKER_* settings
that the operator's settings (queueworker.settings) accept; the pods the operator builds fit the chart
(broker Secret, NetworkPolicy, PodMonitor)."""

from __future__ import annotations

from typing import Any

import yaml
from queueworker import builders
from queueworker.api.spec import parse_manifest
from queueworker.settings import Settings

from tests.support.rendering import NAMESPACE, RELEASE, REPO, env_of, find, one, render

CHART_YAML = yaml.safe_load((REPO / "charts" / "queueworker" / "Chart.yaml").read_text(encoding="utf-8"))


def operator_container(values: dict[str, Any] | None = None) -> dict[str, Any]:
    deployment = one(render(values or {}), "Deployment", "-operator")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


def settings_from(container: dict[str, Any], secret_url: str = "redis://:pw@redis:6379/0") -> Settings:
    env: dict[str, str] = {}
    for name, value in env_of(container).items():
        if not name.startswith("QUEUEWORKER_"):
            continue
        env[name] = secret_url if isinstance(value, dict) else value
    return Settings.from_env(env)


def test_one_replica_recreated_never_two() -> None:
    deployment = one(render({}), "Deployment", "-operator")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}


def test_kopf_command_and_liveness_endpoint() -> None:
    container = operator_container()
    assert container["command"] == ["kopf"]
    assert container["args"] == [
        "run",
        "-m",
        "queueworker_operator",
        "--standalone",
        "--all-namespaces",
        "--liveness=http://0.0.0.0:8080/healthz",
    ]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": 9810, "health": 8080}
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    moved = operator_container({"operator": {"healthPort": 8181, "metricsPort": 9911, "verbose": True}})
    assert "--liveness=http://0.0.0.0:8181/healthz" in moved["args"] and "--verbose" in moved["args"]
    assert {p["name"]: p["containerPort"] for p in moved["ports"]} == {"metrics": 9911, "health": 8181}
    assert env_of(moved)["QUEUEWORKER_METRICS_PORT"] == "9911"


def test_env_is_what_the_operator_config_reads() -> None:
    container = operator_container()
    env = env_of(container)
    known = {f"QUEUEWORKER_{name.upper()}" for name in Settings.__dataclass_fields__}
    ours = {name for name in env if name.startswith("QUEUEWORKER_")}
    assert ours <= known, f"settings the operator does not read: {ours - known}"
    assert {
        "QUEUEWORKER_REDIS_URL",
        "QUEUEWORKER_DEFAULT_IMAGE",
        "QUEUEWORKER_BROKER_SECRET",
        "QUEUEWORKER_BROKER_SECRET_KEY",
        "QUEUEWORKER_WORKER_METRICS_PORT",
    } <= ours
    settings = settings_from(container)
    assert settings.default_image == f"queueworker/worker:{CHART_YAML['appVersion']}"
    assert settings.broker_secret == "queueworker-broker" and settings.broker_secret_key == "url"
    assert settings.worker_metrics_port == 9809 and settings.metrics_port == 9810
    assert settings.autoscale_interval == 5.0 and settings.drift_interval == 60.0
    assert "QUEUEWORKER_PROMETHEUS_URL" not in env, "only KEDA mode queries Prometheus"
    keda = settings_from(operator_container({"keda": {"enabled": True}}))
    assert keda.prometheus_url == Settings().prometheus_url, "the chart's default is the operator's"
    custom = settings_from(
        operator_container(
            {
                "operator": {"autoscaleInterval": 2.5, "driftInterval": 30},
                "worker": {
                    "image": {
                        "repository": "registry.example/w",
                        "tag": "1.2",
                        "pullPolicy": "Always",
                        "digest": "sha256:" + "a" * 64,
                    },
                    "metricsPort": 9999,
                },
            }
        )
    )
    assert custom.autoscale_interval == 2.5 and custom.drift_interval == 30.0
    assert custom.default_image == "registry.example/w:1.2@sha256:" + "a" * 64
    assert custom.image_pull_policy == "Always" and custom.worker_metrics_port == 9999


def test_the_broker_url_comes_only_from_the_secret() -> None:
    for values in ({}, {"redis": {"enabled": False}, "externalRedis": {"url": "redis://:pw@r:6379/0"}}):
        for obj in render(values):
            if obj["kind"] not in ("Deployment", "StatefulSet"):
                continue
            for c in obj["spec"]["template"]["spec"]["containers"]:
                for e in c.get("env") or []:
                    assert "redis://" not in str(e.get("value", "")), (obj["metadata"]["name"], e)
                assert not any("redis://" in a for a in c.get("args") or []), c["args"]
        container = operator_container(values)
        assert env_of(container)["QUEUEWORKER_REDIS_URL"] == {
            "secretKeyRef": {"name": "queueworker-broker", "key": "url"}
        }


def test_exporter_reads_the_secret_and_serves_its_port() -> None:
    deployment = one(
        render({"exporter": {"port": 9900, "extraArgs": ["--queues", "celery"]}}), "Deployment", "-exporter"
    )
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["qw"]
    assert container["args"] == ["exporter", "--port", "9900", "--queues", "celery"]
    assert env_of(container)["QUEUEWORKER_REDIS_URL"] == {
        "secretKeyRef": {"name": "queueworker-broker", "key": "url"}
    }
    assert container["ports"] == [{"name": "metrics", "containerPort": 9900, "protocol": "TCP"}]
    assert container["image"] == f"queueworker/worker:{CHART_YAML['appVersion']}"
    assert not find(render({"exporter": {"enabled": False}}), "Deployment", f"{RELEASE}-queueworker-exporter")


def example_worker_pod(settings: Settings, namespace: str) -> dict[str, Any]:
    manifest = yaml.safe_load((REPO / "examples" / "default.yaml").read_text(encoding="utf-8"))
    manifest.setdefault("metadata", {})["namespace"] = namespace
    qw = parse_manifest(manifest)
    deployment = next(
        o
        for o in builders.render([qw], settings)
        if o["kind"] == "Deployment"
        and o["metadata"]["labels"].get("app.kubernetes.io/component") == "worker"
    )
    return dict(deployment["spec"]["template"])


def admitted(policy: dict[str, Any], pod_labels: dict[str, str], namespace: str) -> bool:
    """Whether a NetworkPolicy ingress rule admits a pod with these labels in `namespace` (the API's
    semantics for podSelector + namespaceSelector peers with matchLabels/matchExpressions In)."""

    def matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
        assert set(selector) <= {"matchLabels", "matchExpressions"}, selector
        if not (selector.get("matchLabels") or {}).items() <= labels.items():
            return False
        for expr in selector.get("matchExpressions") or []:
            assert expr["operator"] == "In"
            if labels.get(expr["key"]) not in expr["values"]:
                return False
        return True

    ns_labels = {"kubernetes.io/metadata.name": namespace}
    policy_ns = policy["metadata"]["namespace"]
    for rule in policy["spec"]["ingress"]:
        for peer in rule.get("from") or []:
            pod_ok = matches(peer.get("podSelector") or {}, pod_labels)
            if "namespaceSelector" in peer:
                ns_ok = matches(peer["namespaceSelector"], ns_labels)
            else:
                ns_ok = namespace == policy_ns
            if pod_ok and ns_ok:
                return True
    return False


def test_worker_pods_built_by_the_operator_fit_the_chart() -> None:
    objects = render({"monitoring": {"podMonitor": {"enabled": True}}})
    settings = settings_from(operator_container())
    pod = example_worker_pod(settings, "shop")
    (container,) = pod["spec"]["containers"]
    # The broker URL: the Secret the chart names, in the worker's namespace.
    refs = [
        e["valueFrom"]["secretKeyRef"]
        for e in container["env"]
        if "valueFrom" in e and "secretKeyRef" in e["valueFrom"]
    ]
    assert {"name": "queueworker-broker", "key": "url"} in refs
    # Redis admits it from any namespace (cluster scope) and the PodMonitor scrapes it.
    redis_policy = one(objects, "NetworkPolicy", "-redis")
    assert admitted(redis_policy, pod["metadata"]["labels"], "shop")
    assert not admitted(redis_policy, {"app": "something-else"}, "shop")
    monitor = one(objects, "PodMonitor")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    port = monitor["spec"]["podMetricsEndpoints"][0]["port"]
    assert any(p["name"] == port and p["containerPort"] == 9809 for p in container["ports"])


def test_namespace_scoped_redis_policy_admits_only_watched_namespaces() -> None:
    objects = render(
        {
            "operator": {"scope": "namespaces", "namespaces": ["team-a"]},
            "networkPolicy": {"redisClients": [{"podSelector": {"matchLabels": {"app": "shop-web"}}}]},
        }
    )
    policy = one(objects, "NetworkPolicy", "-redis")
    settings = settings_from(
        operator_container({"operator": {"scope": "namespaces", "namespaces": ["team-a"]}})
    )
    labels = example_worker_pod(settings, "team-a")["metadata"]["labels"]
    assert admitted(policy, labels, "team-a")
    assert admitted(policy, labels, NAMESPACE), "the chart's own pods (operator, exporter)"
    assert not admitted(policy, labels, "team-b")
    assert admitted(policy, {"queueworker.dev/broker-client": "true"}, "team-a"), "labelled producers"
    assert admitted(policy, {"app": "shop-web"}, NAMESPACE), "networkPolicy.redisClients"
    assert not admitted(policy, {"app": "shop-web"}, "team-a")
    operator_labels = one(objects, "Deployment", "-operator")["spec"]["template"]["metadata"]["labels"]
    assert admitted(policy, operator_labels, NAMESPACE)


def test_name_override_keeps_the_chart_pods_admitted() -> None:
    objects = render({"nameOverride": "broker"})
    policy = one(objects, "NetworkPolicy", "-redis")
    for suffix in ("-operator", "-exporter"):
        labels = one(objects, "Deployment", suffix)["spec"]["template"]["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "broker"
        assert admitted(policy, labels, NAMESPACE), suffix


def test_kopf_accepts_the_rendered_arguments() -> None:
    """kopf's own CLI parser reads the chart's args (without running anything)."""
    from kopf.cli import main

    run = main.commands["run"]
    scoped = operator_container(
        {"operator": {"scope": "namespaces", "namespaces": ["team-a", "team-b"], "verbose": True}}
    )
    assert scoped["command"] == ["kopf"] and scoped["args"][0] == "run"
    params = run.make_context("run", list(scoped["args"][1:])).params
    assert params["modules"] == ("queueworker_operator",)
    assert params["standalone"] is True and params["clusterwide"] is False
    assert params["namespaces"] == ("team-a", "team-b")
    assert params["liveness_endpoint"] == "http://0.0.0.0:8080/healthz" and params["verbose"] is True
    clusterwide = run.make_context("run", list(operator_container()["args"][1:])).params
    assert clusterwide["clusterwide"] is True and clusterwide["namespaces"] == ()
