"""The pod-level fields of the spec model that carry Kubernetes' own types: resources, env, tolerations
and affinity. Checked as far as the CRD describes them (each reader gets its field of the table,
api/podfields.py, for the bounds, enums and rules), and passed on as plain mappings."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from queueworker.api.checks import QUANTITY, Checker, describe, is_json, join
from queueworker.api.schema import Field, Node

QUANTITY_WHAT = "a quantity like 500m, 2, 1.5Gi or 256Mi"
QUANTITY_MAX_LENGTH = 64  # the quantity fields of the table (api/podfields.py) carry it as maxLength


def quantity_ok(value: Any) -> bool:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value >= 0
    return isinstance(value, str) and len(value) <= QUANTITY_MAX_LENGTH and QUANTITY.match(value) is not None


def _quantities(check: Checker, raw: Any, where: str, field: Field) -> dict[str, Any]:
    values = check.fields(raw, where, None) or {}
    limit = field.max_properties or 0
    if len(values) > limit:
        check.error(where, f"must have at most {limit} entries, got {len(values)}")
    for name, value in values.items():
        if not quantity_ok(value):
            fraction = isinstance(value, float) and math.isfinite(value) and value > 0
            hint = f" ({_fraction_hint(value)})" if fraction else ""
            check.error(f"{where}[{name}]", f"must be {QUANTITY_WHAT}, got {describe(value)}{hint}")
    return {name: value for name, value in values.items() if quantity_ok(value)}


def _fraction_hint(value: float) -> str:
    """How to write a fractional number as the quantity the API server accepts (it takes only integers
    and strings)."""
    text = repr(value)
    milli = value * 1000
    exact = milli.is_integer() and milli < 10**15
    how = f"{int(milli)}m or the quoted string '{text}'" if exact else f"the quoted string '{text}'"
    return f"the API server takes no fractional numbers: write {how}"


def parse_resources(check: Checker, raw: Any, path: str, field: Field) -> dict[str, Any]:
    if raw is None:
        return {}
    d = check.fields(raw, path, [sub.name for sub in field.fields])
    return {
        key: _quantities(check, value, join(path, key), field.child(key)) for key, value in (d or {}).items()
    }


def parse_env(check: Checker, raw: Any, path: str, field: Field) -> tuple[Mapping[str, Any], ...]:
    if raw is None:
        return ()
    out: list[Mapping[str, Any]] = []
    names: set[str] = set()
    assert field.items is not None
    item_field = field.items
    name_field = item_field.child("name")
    for i, item in enumerate(check.items(raw, path, field.max_items or 0)):
        where = f"{path}[{i}]"
        d = check.fields(
            item, where, [sub.name for sub in item_field.fields], required={"name": name_field.what}
        )
        if d is None:
            continue
        limit = name_field.max_length or 0
        name = check.string(
            d, "name", where, pattern=name_field.regex, max_length=limit, what=name_field.what
        )
        if name is not None and name in names:
            check.error(join(where, "name"), f"duplicate environment variable {name!r}")
        names.add(name or "")
        if "value" in d and not isinstance(d["value"], str):
            got = describe(d["value"])
            check.error(join(where, "value"), f"must be a string (quote numbers and booleans), got {got}")
        run_rules(check, item_field, Node(d, {}, where))
        if "valueFrom" in d:
            _value_from(check, d["valueFrom"], join(where, "valueFrom"), item_field.child("valueFrom"))
        out.append(d)
    return tuple(out)


def _value_from(check: Checker, raw: Any, path: str, field: Field) -> None:
    d = check.fields(raw, path, [sub.name for sub in field.fields])
    if d is None:
        return
    run_rules(check, field, Node(d, {}, path))
    for source, value in d.items():
        ref_field = field.child(source)
        where = join(path, source)
        required = [sub.name for sub in ref_field.fields if sub.required]
        ref = check.fields(value, where, [sub.name for sub in ref_field.fields], required=required) or {}
        for key in ref:
            if key == "optional":
                check.boolean(ref, key, where, False)
            elif key == "divisor":
                if not quantity_ok(ref[key]):
                    check.error(join(where, key), f"must be {QUANTITY_WHAT}, got {describe(ref[key])}")
            else:
                limit = ref_field.child(key).max_length or 0
                check.string(ref, key, where, pattern=None, max_length=limit, what="a non-empty string")


def parse_tolerations(check: Checker, raw: Any, path: str, field: Field) -> tuple[Mapping[str, Any], ...]:
    if raw is None:
        return ()
    out: list[Mapping[str, Any]] = []
    assert field.items is not None
    item_field = field.items
    for i, item in enumerate(check.items(raw, path, field.max_items or 0)):
        where = f"{path}[{i}]"
        d = check.fields(item, where, [sub.name for sub in item_field.fields])
        if d is None:
            continue
        for name in ("key", "value"):
            limit = item_field.child(name).max_length or 0
            text = d.get(name)
            if text is not None and (not isinstance(text, str) or len(text) > limit):
                got = describe(text)
                check.error(join(where, name), f"must be a string of at most {limit} characters, got {got}")
        operators, effects = item_field.child("operator").enum, item_field.child("effect").enum
        operator = check.enum(d, "operator", where, choices=operators, default="Equal")
        effect = check.enum(d, "effect", where, choices=effects, default="") if "effect" in d else None
        check.integer(d, "tolerationSeconds", where, 0)
        run_rules(check, item_field, Node(d, {"operator": operator, "effect": effect}, where))
        out.append(d)
    return tuple(out)


def parse_affinity(check: Checker, raw: Any, path: str, field: Field) -> Mapping[str, Any]:
    if raw is None:
        return {}
    d = check.fields(raw, path, [sub.name for sub in field.fields]) or {}
    for key, value in d.items():
        if not isinstance(value, Mapping) or not is_json(value):
            kind = key[0].upper() + key[1:]
            check.error(
                join(path, key), f"must be a Kubernetes {kind} object (a mapping), got {describe(value)}"
            )
    return d


def run_rules(check: Checker, field: Field, node: Node) -> None:
    """The Python checks of `field`'s cross-field rules (api/rules.py) on one object."""
    for rule in field.rules:
        rule.check(check, node)
