"""values.yaml documents every key; values.schema.json rejects unknown keys and wrong types; bad values
and impossible combinations fail with a message naming the value."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import helm_python as helm
import jsonschema
import pytest
import yaml

from tests.support.rendering import CHART, CI_VALUES, NAMESPACE, RELEASE, chart, load_values

VALUES = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
SCHEMA = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))

#: Object schemas allowed to take keys they do not list, each with the reason.
OPEN_OBJECTS = {
    "#/properties/global": "Helm's globals: a parent chart may pass any, this chart reads none",
    "#/definitions/affinity/properties/nodeAffinity": "a Kubernetes NodeAffinity passed through verbatim",
    "#/definitions/affinity/properties/podAffinity": "a Kubernetes PodAffinity passed through verbatim",
    "#/definitions/affinity/properties/podAntiAffinity": "a PodAntiAffinity passed through verbatim",
    "#/definitions/envVar/properties/valueFrom": "a Kubernetes EnvVarSource passed through verbatim",
}


def key_paths(node: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            yield path
            yield from key_paths(value, path)


def test_every_values_key_has_a_param_comment() -> None:
    text = (CHART / "values.yaml").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\s*## @param (\S+) \S", text, flags=re.MULTILINE))
    paths = set(key_paths(VALUES))
    assert paths - documented == set(), "keys without a `## @param path description` line"
    assert documented - paths == set(), "@param lines for keys that do not exist"


def test_every_param_comment_sits_right_above_its_key() -> None:
    lines = (CHART / "values.yaml").read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        match = re.match(r"^(\s*)## @param (\S+) ", line)
        if not match:
            continue
        key = match.group(2).rsplit(".", 1)[-1]
        following = next(j for j in lines[i + 1 :] if j.strip() and not j.strip().startswith("#"))
        assert following.startswith(f"{match.group(1)}{key}:"), (
            f"@param {match.group(2)} is above {following!r}"
        )


def schema_nodes(node: Any, pointer: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        yield pointer, node
        for key, value in node.items():
            if key in ("properties", "definitions"):
                for name, sub in value.items():
                    yield from schema_nodes(sub, f"{pointer}/{key}/{name}")
            elif key in ("items", "additionalProperties") and isinstance(value, dict):
                yield from schema_nodes(value, f"{pointer}/{key}")


def test_schema_closes_every_object() -> None:
    for pointer, node in schema_nodes(SCHEMA):
        if node.get("type") != "object":
            continue
        if pointer in OPEN_OBJECTS:
            continue
        extra = node.get("additionalProperties")
        # Either a closed record, or a map whose values are typed (labels, annotations, nodeSelector).
        assert extra is False or (isinstance(extra, dict) and extra.get("type") == "string"), pointer


def test_schema_types_every_property() -> None:
    for pointer, node in schema_nodes(SCHEMA):
        for name, sub in (node.get("properties") or {}).items():
            assert "type" in sub or "$ref" in sub or "enum" in sub, f"{pointer}/properties/{name} has no type"


def test_schema_and_values_agree() -> None:
    """The defaults pass the schema, and every default key is declared by it (and nothing more)."""
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    jsonschema.Draft7Validator(SCHEMA).validate(VALUES)
    declared = set(SCHEMA["properties"]) - {"global"}
    assert declared == set(VALUES)


@pytest.mark.parametrize("values_file", CI_VALUES, ids=lambda p: p.name)
def test_ci_values_pass_the_schema(values_file: Any) -> None:
    chart().validate_schema(chart().merge_values(load_values(values_file)))


def render_error(values: dict[str, Any]) -> str:
    with pytest.raises(helm.HelmError) as caught:
        chart().render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    return str(caught.value)


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"operater": {}}, "operater"),
        ({"redis": {"appendfsyn": "always"}}, "appendfsyn"),
        ({"redis": {"persistence": {"sise": "1Gi"}}}, "sise"),
        ({"operator": {"resources": {"limits": {"cpus": "1"}}}}, "cpus"),
        ({"monitoring": {"serviceMonitor": {"enable": True}}}, "enable"),
        ({"exporter": {"image": {"repository": "x"}}}, "image"),
    ],
)
def test_typos_are_rejected_naming_the_key(values: dict[str, Any], named: str) -> None:
    message = render_error(values)
    assert "additional properties" in message and f"'{named}'" in message, message


@pytest.mark.parametrize(
    ("values", "path"),
    [
        ({"redis": {"enabled": "yes"}}, "/redis/enabled"),
        ({"redis": {"appendfsync": "sometimes"}}, "/redis/appendfsync"),
        ({"redis": {"persistence": {"size": 8}}}, "/redis/persistence/size"),
        ({"operator": {"scope": "global"}}, "/operator/scope"),
        ({"operator": {"namespaces": "team-a"}}, "/operator/namespaces"),
        ({"operator": {"autoscaleInterval": 0}}, "/operator/autoscaleInterval"),
        ({"operator": {"metricsPort": 70000}}, "/operator/metricsPort"),
        ({"worker": {"image": {"pullPolicy": "Sometimes"}}}, "/worker/image/pullPolicy"),
        ({"keda": {"prometheusUrl": "prometheus:9090"}}, "/keda/prometheusUrl"),
        ({"keda": {"prometheusUrl": ""}}, "/keda/prometheusUrl"),
        ({"externalRedis": {"url": "http://redis:6379"}}, "/externalRedis/url"),
        ({"monitoring": {"podMonitor": {"interval": "often"}}}, "/monitoring/podMonitor/interval"),
        ({"commonLabels": {"team": 3}}, "/commonLabels/team"),
        ({"redis": {"resources": {"limits": {"memory": "lots"}}}}, "/redis/resources/limits/memory"),
    ],
)
def test_wrong_types_are_rejected_naming_the_value(values: dict[str, Any], path: str) -> None:
    message = render_error(values)
    assert f"at '{path}'" in message, message


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"redis": {"enabled": False}}, "redis.enabled=false"),
        (
            {
                "redis": {"enabled": False},
                "externalRedis": {"url": "redis://r:6379/0", "existingSecret": "s"},
            },
            "externalRedis.url and externalRedis.existingSecret",
        ),
        ({"externalRedis": {"existingSecret": "s"}}, "redis.enabled=true"),
        (
            {
                "redis": {"enabled": False, "auth": {"existingSecret": "a"}},
                "externalRedis": {"existingSecret": "s"},
            },
            "redis.auth.existingSecret",
        ),
        ({"operator": {"scope": "namespaces"}}, "operator.namespaces"),
        ({"operator": {"namespaces": ["team-a"]}}, "operator.scope=cluster"),
        (
            {"keda": {"enabled": True, "prometheusUrl": "http://p:9090"}, "exporter": {"enabled": False}},
            "exporter.enabled",
        ),
        (
            {"monitoring": {"prometheusRule": {"enabled": True}}, "exporter": {"enabled": False}},
            "exporter.enabled",
        ),
        ({"operator": {"metricsPort": 8080}}, "operator.metricsPort and operator.healthPort"),
        ({"operator": {"serviceAccount": {"create": False}}}, "operator.serviceAccount.name"),
    ],
)
def test_impossible_combinations_fail_naming_the_values(values: dict[str, Any], named: str) -> None:
    message = render_error(values)
    assert named in message, message


def test_valid_edge_values_render() -> None:
    """The checks above are not just failing everything: close neighbours of the bad values render."""
    for values in (
        {"redis": {"enabled": False}, "externalRedis": {"existingSecret": "s"}},
        {"operator": {"scope": "namespaces", "namespaces": ["team-a"]}},
        {"keda": {"enabled": True, "prometheusUrl": "http://p:9090"}},
        {"keda": {"enabled": True}},
        {"operator": {"serviceAccount": {"create": False, "name": "mine"}}},
        {"redis": {"resources": {"limits": {"memory": "2Gi", "cpu": 2}}}},
    ):
        assert chart().render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
