"""The CRD and the spec model agree: one corpus of manifests (tests/cases) goes through both the spec
model and the CRD schema as the API server applies it (defaults, structural schema, list types, CEL),
and both must accept the same manifests and flag the same fields."""

from __future__ import annotations

import math
import re
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from queueworker import cron
from queueworker.api import checks
from queueworker.api.spec import MODES, POOLS, SpecError, parse_manifest

from hack import crdref
from tests.support import cel

CASES = cel.load_cases()
CRD = crdref.load_crd()
SCHEMA = cel.version_schema()
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


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_model_and_crd_agree(case: cel.Case) -> None:
    model = model_paths(case.obj)
    crd = cel.validate(case.obj)
    crd_paths = [p for p, _ in crd]
    if case.valid:
        assert model == [], f"the spec model rejects a valid case: {model}"
        assert crd == [], f"the CRD rejects a valid case: {crd}"
        return
    assert case.expect, "an invalid case declares its errors with '# expect: <path>'"
    assert sorted(set(model)) == sorted(set(case.expect)), "the spec model flags other fields than declared"
    for path in case.expect:
        assert any(covers(p, path) for p in crd_paths), f"the CRD does not flag {path}: {crd}"
    for path in crd_paths:
        related = any(covers(path, e) or covers(e, path) for e in case.expect)
        assert related or path in case.crd_extra, f"the CRD flags {path}, which the case does not expect"


def test_corpus_is_broad() -> None:
    valid = [c for c in CASES if c.valid]
    invalid = [c for c in CASES if not c.valid]
    assert len(valid) >= 10
    assert len(invalid) >= 40
    assert {c.path.stem for c in valid} >= {"minimal", "maximal"}


def test_every_cel_rule_is_exercised_by_an_invalid_case() -> None:
    messages = {m for case in CASES if not case.valid for _, m in cel.validate(case.obj)}
    rules = [r for _, node, _ in _schema_nodes(SCHEMA, "") for r in node.get("x-kubernetes-validations", [])]
    assert rules
    missing = [r["rule"] for r in rules if r["message"] not in messages]
    assert missing == [], f"no invalid case breaks these rules: {missing}"


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
        if "default" in node:
            sub = jsonschema.Draft7Validator(cel.to_jsonschema(node))
            defaulted = cel.apply_defaults(node["default"], node)
            problems += [f"{path}: default invalid: {e.message}" for e in sub.iter_errors(defaulted)]
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


def test_cel_rules_compile_and_name_their_fields() -> None:
    for path, node, _ in _schema_nodes(SCHEMA, ""):
        for rule in node.get("x-kubernetes-validations", []):
            cel.compile_rule(rule["rule"])
            assert rule["message"].startswith("spec."), (path, rule["message"])
            if "fieldPath" in rule:
                target = rule["fieldPath"].lstrip(".")
                assert target in node["properties"], (path, rule["fieldPath"])


def test_crd_defaults_equal_model_defaults() -> None:
    minimal = next(c for c in CASES if c.id == "valid/minimal").obj
    stored = cel.defaulted(minimal)["spec"]
    qw = parse_manifest(minimal).spec
    assert stored["concurrency"] == qw.concurrency == 2
    assert stored["pool"] == qw.pool == "prefork"
    assert stored["prefetchMultiplier"] == qw.prefetch_multiplier == 1
    assert stored["maxTasksPerChild"] == qw.max_tasks_per_child == 0
    assert stored["replicas"] == qw.replicas == 1
    auto = stored["autoscaling"]
    assert auto == cel.model_autoscaling(qw)
    assert auto == {"mode": "builtin", "minReplicas": 1, "maxReplicas": 10, "targetWaitSeconds": 30,
                    "scaleDownDelaySeconds": 300}  # fmt: skip
    assert (
        stored["shutdown"]
        == {"gracePeriodSeconds": qw.shutdown.grace_period_seconds}
        == {"gracePeriodSeconds": 300}
    )
    schedule = SPEC["properties"]["schedules"]["items"]["properties"]["enabled"]["default"]
    assert schedule is True


@pytest.mark.parametrize("case", [c for c in CASES if c.valid], ids=lambda c: c.id)
def test_stored_values_equal_model_values(case: cel.Case) -> None:
    """What the API server stores after defaulting is what the model parsed, field by field."""
    stored = cel.defaulted(case.obj)["spec"]
    qw = parse_manifest(case.obj).spec
    auto, shutdown = stored["autoscaling"], stored["shutdown"]
    assert (stored["concurrency"], stored["pool"], stored["prefetchMultiplier"]) == (
        qw.concurrency, qw.pool, qw.prefetch_multiplier)  # fmt: skip
    assert (stored["maxTasksPerChild"], stored["replicas"]) == (qw.max_tasks_per_child, qw.replicas)
    assert (auto["mode"], auto["minReplicas"], auto["maxReplicas"]) == (
        qw.autoscaling.mode, qw.autoscaling.min_replicas, qw.autoscaling.max_replicas)  # fmt: skip
    assert math.isclose(auto["targetWaitSeconds"], qw.autoscaling.target_wait_seconds)
    assert auto["scaleDownDelaySeconds"] == qw.autoscaling.scale_down_delay_seconds
    assert shutdown["gracePeriodSeconds"] == qw.shutdown.grace_period_seconds
    assert tuple(stored["queues"]) == qw.queues
    assert tuple(stored.get("routes", ())) == qw.routes
    assert stored.get("image") == qw.image
    for raw, parsed in zip(stored.get("schedules", []), qw.schedules, strict=True):
        assert raw["name"] == parsed.name and raw["task"] == parsed.task
        assert raw["enabled"] == parsed.enabled
        assert raw.get("queue", qw.queues[0]) == parsed.queue
        assert raw.get("cron") == parsed.cron
        assert (raw.get("every") is None) == (parsed.every is None)


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
