"""Chart values fuzzing with the real Helm engine (helm-python-sdk): values generated from the chart's own
values.schema.json (strategies derived from it below) and hostile values put anywhere in the values
tree. Every
render either succeeds with objects a Kubernetes API server accepts, or fails with a schema error or one
of the chart's `fail` messages naming a value — never a template error (nil pointer, wrong type, ...).

tests/fast/chart/test_values.py checks chosen typos, wrong types and impossible combinations one by one."""

from __future__ import annotations

import json
import re
from typing import Any

import helm_python as helm
import yaml
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from tests.support.rendering import CHART, NAMESPACE, RELEASE, chart
from tests.support.validate import validate_object

SCHEMA = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
FAIL = re.compile(r"^execution error at \(queueworker/templates/[\w/.-]+:\d+:\d+\): [a-zA-Z]+(\.[a-zA-Z]+)+")
SCHEMA_ERROR = "values don't meet the specifications of the schema"
# No shrinking: a render takes ~0.3 s and a failing values tree is small enough to read as generated.
FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    report_multiple_bugs=False,
)


def keys_of(schema: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every values path the schema declares (following local $refs)."""
    if "$ref" in schema:
        schema = SCHEMA["definitions"][schema["$ref"].rsplit("/", 1)[1]]
    paths = []
    for name, sub in (schema.get("properties") or {}).items():
        paths.append((*prefix, name))
        paths += keys_of(sub, (*prefix, name))
    return paths


PATHS = keys_of(SCHEMA)
hostile_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.sampled_from(
        [
            "{{ .Values }}",
            '{{ fail "x" }}',
            "a\nb: c",
            "-1",
            "0x10",
            "*",
            "../../etc/passwd",
            "\x00",
            "🙂" * 50,
        ]
    ),
    st.lists(st.text(max_size=5), max_size=3),
    st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
)


def from_schema(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values the (draft-07 subset of the) chart schema admits: types, enum, pattern, lengths, bounds,
    properties/required/additionalProperties, items/minItems/uniqueItems, local $refs."""
    if "$ref" in schema:
        return from_schema(SCHEMA["definitions"][schema["$ref"].rsplit("/", 1)[1]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    types = schema.get("type", "object")
    options = [_typed(t, schema) for t in (types if isinstance(types, list) else [types])]
    return st.one_of(*options)


def _typed(kind: str, schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    low, high = schema.get("minimum"), schema.get("maximum")
    if "exclusiveMinimum" in schema:
        low = schema["exclusiveMinimum"] + (1 if kind == "integer" else 0.001)
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        return st.integers(low if low is not None else -(10**6), high if high is not None else 10**6)
    if kind == "number":
        numbers = st.floats(low if low is not None else -1e6, high if high is not None else 1e6)
        return numbers if "pattern" not in schema else st.integers(0, 10**6)  # quantities: digits only
    if kind == "string":
        short = schema.get("maxLength", 30)
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True).filter(
                lambda v: schema.get("minLength", 0) <= len(v) <= short
            )
        return st.text(min_size=schema.get("minLength", 0), max_size=min(short, 30))
    if kind == "array":
        items = from_schema(schema.get("items", {"type": "string"}))
        unique = (lambda v: json.dumps(v, sort_keys=True)) if schema.get("uniqueItems") else None
        return st.lists(
            items,
            min_size=schema.get("minItems", 0),
            max_size=max(schema.get("minItems", 0), 3),
            unique_by=unique,
        )
    if kind == "null":
        return st.none()
    props = schema.get("properties") or {}
    required = set(schema.get("required") or ())
    fixed = st.fixed_dictionaries(
        {k: from_schema(v) for k, v in props.items() if k in required},
        optional={k: from_schema(v) for k, v in props.items() if k not in required},
    )
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict) and not props:
        return st.dictionaries(st.from_regex(r"\A[a-z][a-z0-9./-]{0,20}\Z"), from_schema(extra), max_size=3)
    return fixed


def outcome(values: Any) -> str:
    """'rendered', 'schema' or 'fail'; AssertionError on anything else."""
    try:
        files = chart().render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    except helm.HelmError as exc:
        message = str(exc)
        if isinstance(exc, helm.HelmValuesError) and SCHEMA_ERROR in message:
            return "schema"
        assert FAIL.match(message), f"not a schema error nor a `fail` naming a value:\n{message}\n{values}"
        return "fail"
    for path, text in files.items():
        if path.endswith("NOTES.txt") or not text.strip():
            continue
        for obj in yaml.safe_load_all(text):
            if obj:
                validate_object(obj, "1.30.0")
    return "rendered"


def set_path(values: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    node = values
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    return values


@FUZZ
@given(values=from_schema(SCHEMA))
@example(values={"nameOverride": "0"})  # a label value rendered as the integer 0
@example(values={"operator": {"image": {"repository": ">"}}})  # unquoted: the rendered YAML breaks
@example(values={"commonLabels": {"team": "a b"}})  # not a label value, yet the schema admits it
def test_schema_valid_values_render_or_fail_by_name(values: dict[str, Any]) -> None:
    assert outcome(values) in ("rendered", "fail")  # the schema accepted them


@FUZZ
@given(changes=st.lists(st.tuples(st.sampled_from(PATHS), hostile_values), min_size=1, max_size=4))
def test_hostile_values_anywhere_are_schema_errors_or_fail_by_name(
    changes: list[tuple[tuple[str, ...], Any]],
) -> None:
    values: dict[str, Any] = {}
    for path, value in changes:
        try:
            set_path(values, path, value)
        except (AttributeError, TypeError):
            continue  # a parent was set to a scalar by an earlier change: that one is hostile enough
    outcome(values)


@FUZZ
@given(
    values=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=10),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
        max_leaves=20,
    )
)
def test_values_of_any_shape(values: Any) -> None:
    if isinstance(values, dict):
        outcome(values)


def test_the_checks_can_fail() -> None:
    assert outcome({"redis": {"enabled": "yes"}}) == "schema"
    assert outcome({"redis": {"enabled": False}}) == "fail"
    assert outcome({}) == "rendered"
    assert not FAIL.match(
        'template: queueworker/templates/x.yaml:3:4: executing "x" at <.Values.a.b>: '
        "nil pointer evaluating interface {}.b"
    )
