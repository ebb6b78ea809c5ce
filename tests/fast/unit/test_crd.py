"""The CRD itself: structural, bounded, described, valid for Kubernetes, its patterns and enums the spec
model's; and the agreement corpus (tests/cases) is broad. Whether the API server and the model give
every manifest the same verdict is tested on a real server (tests/apiserver)."""

from __future__ import annotations

import re
from typing import Any

import kubernetes_validate
import pytest
from queueworker import cron
from queueworker.api import checks
from queueworker.api.spec import MODES, POOLS, SpecError, parse_manifest

from hack import crdgen
from tests.support.cases import load_cases

CASES = load_cases()
CRD = crdgen.load_crd()
SCHEMA = crdgen.version_schema()
SPEC = SCHEMA["properties"]["spec"]


def model_paths(obj: Any) -> list[str]:
    try:
        parse_manifest(obj)
    except SpecError as exc:
        return [e.path for e in exc.errors]
    return []


def covers(outer: str, inner: str) -> bool:
    """`outer` names `inner` or one of its parents."""
    return inner == outer or inner.startswith((outer + ".", outer + "["))


def test_corpus_is_broad() -> None:
    valid = [c for c in CASES if c.valid]
    invalid = [c for c in CASES if not c.valid]
    assert len(valid) >= 10
    assert len(invalid) >= 40
    assert {c.path.stem for c in valid} >= {"minimal", "maximal"}


@pytest.mark.parametrize("version", ["1.28.0", "1.34.0"])
def test_crd_passes_kubernetes_validate(version: str) -> None:
    kubernetes_validate.validate(CRD, version, strict=True)


def test_crd_identity_and_subresources() -> None:
    spec = CRD["spec"]
    assert CRD["metadata"]["name"] == "queueworkers.queueworker.dev"
    assert spec["group"] == "queueworker.dev" and spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == "QueueWorker"
    assert spec["names"]["plural"] == "queueworkers" and spec["names"]["singular"] == "queueworker"
    assert spec["names"]["shortNames"] == ["qw"]
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
    assert version["subresources"]["status"] == {}
    assert version["subresources"]["scale"] == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns == {
        "Queues": ".spec.queues",
        "Mode": ".spec.autoscaling.mode",
        "Ready": ".status.readyReplicas",
        "Desired": ".status.desiredReplicas",
        "Backlog": ".status.backlog",
        "Oldest wait": ".status.oldestWaitSeconds",
        "Age": ".metadata.creationTimestamp",
    }
    for column in version["additionalPrinterColumns"]:
        assert _resolve(SCHEMA, column["jsonPath"]) is not None or column["name"] == "Age", column


def _resolve(schema: dict[str, Any], json_path: str) -> dict[str, Any] | None:
    node: dict[str, Any] | None = schema
    for part in json_path.strip(".").split("."):
        node = (node or {}).get("properties", {}).get(part)
    return node


def _schema_nodes(node: dict[str, Any], path: str) -> list[tuple[str, dict[str, Any], bool]]:
    """(path, node, is_property) for every node of a schema."""
    out = [(path, node, True)]
    for name, sub in node.get("properties", {}).items():
        out += _schema_nodes(sub, f"{path}.{name}" if path else name)
    if isinstance(node.get("items"), dict):
        out += [(p, n, False) for p, n, _ in _schema_nodes(node["items"], f"{path}[]")]
    if isinstance(node.get("additionalProperties"), dict):
        out += [(p, n, False) for p, n, _ in _schema_nodes(node["additionalProperties"], f"{path}[*]")]
    return out


def test_schema_is_structural_and_bounded() -> None:
    """Every node is typed (or an int-or-string / preserved Kubernetes type), every property described,
    and spec strings, lists and maps are bounded so the CEL cost estimate stays within the limits."""
    problems = []
    for path, node, is_property in _schema_nodes(SCHEMA, ""):
        typed = (
            "type" in node
            or node.get("x-kubernetes-int-or-string")
            or node.get("x-kubernetes-preserve-unknown-fields")
        )
        if not typed:
            problems.append(f"{path}: no type")
        if is_property and path and not node.get("description") and path != "metadata":
            problems.append(f"{path}: no description")
        if not path.startswith("spec"):
            continue
        kind = node.get("type")
        if (
            kind == "string"
            and "enum" not in node
            and "maxLength" not in node
            and not path.endswith(".value")
        ):
            problems.append(f"{path}: string without maxLength")
        if kind == "array" and "maxItems" not in node:
            problems.append(f"{path}: array without maxItems")
        if kind == "object" and "additionalProperties" in node and "maxProperties" not in node:
            problems.append(f"{path}: map without maxProperties")
        if node.get("x-kubernetes-preserve-unknown-fields") and not re.search(
            r"affinity|args\[\]|kwargs", path, re.IGNORECASE
        ):
            problems.append(f"{path}: preserves unknown fields outside Kubernetes' own types")
    assert problems == []


SCHEMA_KEYWORDS = {
    "type", "format", "description", "default", "enum", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "minLength", "maxLength", "pattern", "minItems", "maxItems", "minProperties",
    "maxProperties", "required", "properties", "additionalProperties", "items", "anyOf", "nullable",
}  # fmt: skip


def test_schema_uses_only_openapi_keywords() -> None:
    """Catches YAML slips such as a comma in a flow mapping turning text into a key."""
    for path, node, _ in _schema_nodes(SCHEMA, ""):
        unknown = {k for k in node if k not in SCHEMA_KEYWORDS and not k.startswith("x-kubernetes-")}
        assert unknown == set(), (path, unknown)


def test_cel_rules_name_their_fields() -> None:
    """(The API server compiles the rules, and checks every default, when the CRD is applied: the API
    server tier applies it.)"""
    for path, node, _ in _schema_nodes(SCHEMA, ""):
        for rule in node.get("x-kubernetes-validations", []):
            assert rule["message"].startswith("spec."), (path, rule["message"])
            if "fieldPath" in rule:
                target = rule["fieldPath"].lstrip(".")
                assert target in node["properties"], (path, rule["fieldPath"])


def test_patterns_and_enums_are_the_models() -> None:
    props = SPEC["properties"]
    schedule = props["schedules"]["items"]["properties"]
    assert props["app"]["pattern"] == checks.APP.pattern
    assert props["queues"]["items"]["pattern"] == checks.QUEUE.pattern == schedule["queue"]["pattern"]
    assert props["serviceAccountName"]["pattern"] == checks.DNS_SUBDOMAIN.pattern
    assert schedule["name"]["pattern"] == checks.DNS_LABEL.pattern
    assert schedule["cron"]["pattern"] == cron.CRON.pattern
    assert (
        props["resources"]["properties"]["limits"]["additionalProperties"]["pattern"]
        == checks.QUANTITY.pattern
    )
    assert props["env"]["items"]["properties"]["name"]["pattern"] == checks.ENV_NAME.pattern
    assert tuple(props["pool"]["enum"]) == POOLS
    assert tuple(props["autoscaling"]["properties"]["mode"]["enum"]) == MODES


@pytest.mark.parametrize(
    "text",
    ["30s", "5m", "1h", "1h30m", "1d", "2d3h", "0s", "0h0m", "", "30", "1.5h", "30s1m", "1h 30m", "m", "1x",
     "1000000s", "999999s", "1d1d", "5m0s"],
)  # fmt: skip
def test_every_pattern_matches_the_model(text: str) -> None:
    node = SPEC["properties"]["schedules"]["items"]["properties"]["every"]
    crd_ok = bool(re.match(node["pattern"], text)) and bool(re.search("[1-9]", text))
    seconds = checks.duration_seconds(text)
    assert crd_ok == (seconds is not None and seconds > 0)
