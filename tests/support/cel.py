"""Validate an object against the QueueWorker CRD the way the Kubernetes API server does, without one.

Steps, in the API server's order: the built-in object checks (apiVersion, kind, metadata.name and
namespace), pruning of `null` fields, defaulting (a default of `{}` lets nested defaults apply), then
the structural openAPIV3Schema (converted to JSON Schema draft 7 and checked with `jsonschema`), the
list-type rules (`set` and `map` items unique), and finally the `x-kubernetes-validations` CEL rules,
evaluated with cel-python on values typed by the schema.

`validate(obj)` returns `[(field path, message)]` with paths in the spec model's style:
`spec.schedules[1].cron`, `spec.nodeSelector[disk]`.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Iterator, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import celpy
import jsonschema
from celpy import celtypes
from queueworker.api import kubeyaml

from hack.crdref import ROOT, version_schema

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

Error = tuple[str, str]


# -- paths -------------------------------------------------------------------------------------------


def child_path(path: str, key: str | int, schema: dict[str, Any]) -> str:
    """`spec` + `app` -> `spec.app`; list index -> `[i]`; a key of a map (additionalProperties) -> `[key]`."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    if key in schema.get("properties", {}) or not path:
        return f"{path}.{key}" if path else key
    return f"{path}[{key}]"


def child_schema(schema: dict[str, Any], key: str | int) -> dict[str, Any]:
    if isinstance(key, int):
        items: dict[str, Any] = schema.get("items", {})
        return items
    props: dict[str, Any] = schema.get("properties", {})
    if key in props:
        sub: dict[str, Any] = props[key]
        return sub
    extra = schema.get("additionalProperties")
    return extra if isinstance(extra, dict) else {}


def render_path(parts: list[str | int], schema: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    path = ""
    for part in parts:
        path = child_path(path, part, schema)
        schema = child_schema(schema, part)
    return path, schema


# -- pruning and defaulting --------------------------------------------------------------------------


def preserves_unknown(schema: dict[str, Any]) -> bool:
    return bool(schema.get("x-kubernetes-preserve-unknown-fields")) and "properties" not in schema


def apply_defaults(value: Any, schema: dict[str, Any]) -> Any:
    """A copy of `value` with null fields pruned and defaults filled in, as the API server stores it."""
    if preserves_unknown(schema):
        return copy.deepcopy(value)
    if isinstance(value, dict) and schema.get("type") == "object":
        out: dict[str, Any] = {}
        props: dict[str, Any] = schema.get("properties", {})
        for key, item in value.items():
            sub = child_schema(schema, key)
            if item is None and not sub.get("nullable"):
                continue
            out[key] = apply_defaults(item, sub) if sub else copy.deepcopy(item)
        for key, sub in props.items():
            if key not in out and "default" in sub:
                out[key] = apply_defaults(copy.deepcopy(sub["default"]), sub)
        return out
    if isinstance(value, list) and schema.get("type") == "array":
        return [apply_defaults(item, schema.get("items", {})) for item in value]
    return copy.deepcopy(value)


# -- structural schema -> JSON Schema ----------------------------------------------------------------

_DROPPED = {"description", "default", "nullable", "format", "example", "externalDocs"}


def to_jsonschema(node: dict[str, Any]) -> dict[str, Any]:
    """Convert an OpenAPI v3 structural schema node to JSON Schema draft 7."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key in _DROPPED:
            continue
        if key == "properties":
            out[key] = {name: to_jsonschema(sub) for name, sub in value.items()}
        elif key in ("items", "not") or (key == "additionalProperties" and isinstance(value, dict)):
            out[key] = to_jsonschema(value)
        elif key in ("anyOf", "allOf", "oneOf"):
            out[key] = [to_jsonschema(sub) for sub in value]
        else:
            out[key] = value
    for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if node.get(bound) is True:
            out[bound] = out.pop(limit)
        elif node.get(bound) is False:
            out.pop(bound)
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    closed = "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields")
    if closed and "additionalProperties" not in node:
        out["additionalProperties"] = False
    return out


@cache
def _validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(to_jsonschema(version_schema()))


def structural_errors(obj: Any, schema: dict[str, Any]) -> list[Error]:
    errors: list[Error] = []
    for err in _validator().iter_errors(obj):
        parts = list(err.absolute_path)
        path, node = render_path(parts, schema)
        if err.validator == "additionalProperties" and isinstance(err.instance, dict):
            known = node.get("properties", {})
            for extra in sorted(k for k in err.instance if k not in known):
                errors.append((f"{path}.{extra}" if path else extra, f"unknown field {extra!r}"))
        elif err.validator == "required" and isinstance(err.instance, dict):
            for name in err.validator_value:
                if name not in err.instance:
                    errors.append((child_path(path, name, node), "Required value"))
        elif err.validator == "pattern":
            errors.append((path, f"{err.instance!r} does not match the pattern"))
        else:
            errors.append((path, err.message))
    for value in _walk_values(obj):
        if isinstance(value, float) and not math.isfinite(value):
            errors.append(("", f"{value} is not a JSON number"))
    return errors


def _walk_values(value: Any) -> Iterator[Any]:
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from _walk_values(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk_values(item)


# -- list types --------------------------------------------------------------------------------------


def _nodes(value: Any, schema: dict[str, Any], path: str) -> Iterator[tuple[Any, dict[str, Any], str]]:
    """Every (value, schema, path) below and including this node where the value matches the schema type."""
    yield value, schema, path
    if preserves_unknown(schema):
        return
    if isinstance(value, dict) and schema.get("type") == "object":
        for key, item in value.items():
            sub = child_schema(schema, key)
            if sub:
                yield from _nodes(item, sub, child_path(path, key, schema))
    elif isinstance(value, list) and schema.get("type") == "array":
        for i, item in enumerate(value):
            yield from _nodes(item, schema.get("items", {}), f"{path}[{i}]")


def list_type_errors(obj: Any, schema: dict[str, Any]) -> list[Error]:
    errors: list[Error] = []
    for value, node, path in _nodes(obj, schema, ""):
        kind = node.get("x-kubernetes-list-type")
        if not isinstance(value, list) or kind not in ("set", "map"):
            continue
        seen: list[Any] = []
        for i, item in enumerate(value):
            if kind == "set":
                key: Any = item
            elif isinstance(item, dict):
                key = tuple(item.get(k) for k in node["x-kubernetes-list-map-keys"])
            else:
                continue
            if key in seen:
                errors.append((f"{path}[{i}]", f"Duplicate value: {key!r}"))
            seen.append(key)
    return errors


# -- CEL ---------------------------------------------------------------------------------------------

_ENV = celpy.Environment()


@cache
def _program(rule: str) -> celpy.Runner:
    return _ENV.program(_ENV.compile(rule))


def compile_rule(rule: str) -> None:
    """Raise if `rule` is not valid CEL."""
    _program(rule)


def to_cel(value: Any, schema: dict[str, Any]) -> Any:
    """The CEL value the API server binds for `value` under `schema` (integers stay integers)."""
    kind = schema.get("type")
    if preserves_unknown(schema) or not schema:
        return celpy.json_to_cel(value)
    if kind == "object" and isinstance(value, dict):
        return celtypes.MapType(
            {celtypes.StringType(k): to_cel(v, child_schema(schema, k)) for k, v in value.items()}
        )
    if kind == "array" and isinstance(value, list):
        return celtypes.ListType([to_cel(v, schema.get("items", {})) for v in value])
    if isinstance(value, bool):
        return celtypes.BoolType(value)
    number = isinstance(value, int | float) and math.isfinite(value)
    integral = number and float(value).is_integer()
    if integral and (kind == "integer" or schema.get("x-kubernetes-int-or-string")):
        return celtypes.IntType(int(value))
    if number and kind == "number":
        return celtypes.DoubleType(float(value))
    try:
        return celpy.json_to_cel(value)
    except (TypeError, ValueError):  # not JSON (a YAML date...): the structural check reports it
        return celtypes.StringType(str(value))


def cel_errors(obj: Any, schema: dict[str, Any], skip_under: Sequence[str] = ()) -> list[Error]:
    """Evaluate every x-kubernetes-validations rule. A rule that cannot be evaluated fails, unless a
    structural error below its node (in `skip_under`) already explains it (e.g. a string where the rule
    compares integers)."""
    errors: list[Error] = []
    for value, node, path in _nodes(obj, schema, ""):
        rules = node.get("x-kubernetes-validations", [])
        if not rules:
            continue
        explained = any(bad == path or bad.startswith((path + ".", path + "[")) for bad in skip_under)
        bound = to_cel(value, node)
        for rule in rules:
            result: Any
            try:
                result = _program(rule["rule"]).evaluate({"self": bound})
            except Exception as exc:  # an evaluation error fails the rule, as in the API server
                result = exc
            if isinstance(result, celtypes.BoolType):
                if bool(result):
                    continue
            elif explained:
                continue
            where = path + rule.get("fieldPath", "") if path else rule.get("fieldPath", "").lstrip(".")
            errors.append((where, rule.get("message", rule["rule"])))
    return errors


# -- the whole pipeline ------------------------------------------------------------------------------


def builtin_errors(obj: dict[str, Any]) -> list[Error]:
    """What the API server itself checks before the CRD schema: the type and the object name."""
    errors: list[Error] = []
    if obj.get("apiVersion") != "queueworker.dev/v1alpha1":
        errors.append(("apiVersion", "must be queueworker.dev/v1alpha1"))
    if obj.get("kind") != "QueueWorker":
        errors.append(("kind", "must be QueueWorker"))
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    name = meta.get("name")
    if not isinstance(name, str) or len(name) > 253 or not DNS_SUBDOMAIN.match(name):
        errors.append(("metadata.name", "a lowercase RFC 1123 subdomain is required"))
    namespace = meta.get("namespace")
    if namespace is not None and (
        not isinstance(namespace, str) or len(namespace) > 63 or not DNS_LABEL.match(namespace)
    ):
        errors.append(("metadata.namespace", "a lowercase RFC 1123 label is required"))
    return errors


def defaulted(obj: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = apply_defaults(obj, version_schema())
    return out


def model_autoscaling(spec: Any) -> dict[str, Any]:
    """The spec model's autoscaling settings (a parsed QueueWorker spec) as the CRD spells them."""
    auto = spec.autoscaling
    return {
        "mode": auto.mode,
        "minReplicas": auto.min_replicas,
        "maxReplicas": auto.max_replicas,
        "targetWaitSeconds": auto.target_wait_seconds,
        "scaleDownDelaySeconds": auto.scale_down_delay_seconds,
    }


def validate(obj: Any) -> list[Error]:
    """Every error the API server would report for creating `obj` as a QueueWorker."""
    if not isinstance(obj, dict):
        return [("kind", "the object must be a mapping")]
    schema = version_schema()
    errors = builtin_errors(obj)
    stored = defaulted(obj)
    structural = structural_errors(stored, schema) + list_type_errors(stored, schema)
    errors += structural
    errors += cel_errors(stored, schema, [p for p, _ in structural])
    return errors


# -- the agreement corpus ----------------------------------------------------------------------------

CASES = ROOT / "tests" / "cases"


class Case:
    """One corpus manifest; an invalid one declares its errors in header comments:
    `# expect: <field path>` (the spec model reports exactly these) and, rarely,
    `# crd-extra: <field path>` (a further path only the API server reports)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.valid = path.parent.name == "valid"
        self.text = path.read_text(encoding="utf-8")
        self.obj: Any = kubeyaml.load(self.text)  # as kubectl reads it
        self.expect = self._header("expect")
        self.crd_extra = self._header("crd-extra")

    def _header(self, key: str) -> list[str]:
        prefix = f"# {key}:"
        return [line[len(prefix) :].strip() for line in self.text.splitlines() if line.startswith(prefix)]

    @property
    def id(self) -> str:
        return f"{self.path.parent.name}/{self.path.stem}"


def load_cases() -> list[Case]:
    return [Case(p) for p in sorted(CASES.glob("*/*.yaml"))]
