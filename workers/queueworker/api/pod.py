"""The pod-level fields of the spec model that carry Kubernetes' own types: resources, env, tolerations
and affinity. Checked as far as the CRD describes them, and passed on as plain mappings."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from queueworker.api.checks import ENV_NAME, QUANTITY, Checker, describe, is_json, join

TOLERATION_OPERATORS = ("Exists", "Equal")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
ENV_NAME_WHAT = "an environment variable name (letters, digits, '_', '-', '.'; not starting with a digit)"
QUANTITY_WHAT = "a quantity like 500m, 2, 1.5Gi or 256Mi"


def quantity_ok(value: Any) -> bool:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value >= 0
    return isinstance(value, str) and len(value) <= 64 and QUANTITY.match(value) is not None


def _quantities(check: Checker, raw: Any, where: str) -> dict[str, Any]:
    values = check.fields(raw, where, None) or {}
    if len(values) > 16:
        check.error(where, f"must have at most 16 entries, got {len(values)}")
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


def parse_resources(check: Checker, raw: Any, path: str) -> dict[str, Any]:
    if raw is None:
        return {}
    d = check.fields(raw, path, ("limits", "requests"))
    return {key: _quantities(check, value, join(path, key)) for key, value in (d or {}).items()}


def parse_env(check: Checker, raw: Any, path: str) -> tuple[Mapping[str, Any], ...]:
    if raw is None:
        return ()
    out: list[Mapping[str, Any]] = []
    names: set[str] = set()
    for i, item in enumerate(check.items(raw, path, 128)):
        where = f"{path}[{i}]"
        d = check.fields(item, where, ("name", "value", "valueFrom"), required={"name": ENV_NAME_WHAT})
        if d is None:
            continue
        name = check.string(d, "name", where, pattern=ENV_NAME, max_length=256, what=ENV_NAME_WHAT)
        if name is not None and name in names:
            check.error(join(where, "name"), f"duplicate environment variable {name!r}")
        names.add(name or "")
        if "value" in d and not isinstance(d["value"], str):
            got = describe(d["value"])
            check.error(join(where, "value"), f"must be a string (quote numbers and booleans), got {got}")
        if "value" in d and "valueFrom" in d:
            check.error(where, "set value or valueFrom, not both")
        if "valueFrom" in d:
            _value_from(check, d["valueFrom"], join(where, "valueFrom"))
        out.append(d)
    return tuple(out)


_KEY_REF = ("name", "key", "optional")
_SOURCES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "secretKeyRef": (_KEY_REF, ("key",)),
    "configMapKeyRef": (_KEY_REF, ("key",)),
    "fieldRef": (("apiVersion", "fieldPath"), ("fieldPath",)),
    "resourceFieldRef": (("containerName", "resource", "divisor"), ("resource",)),
}


def _value_from(check: Checker, raw: Any, path: str) -> None:
    d = check.fields(raw, path, tuple(_SOURCES))
    if d is None:
        return
    if len(d) != 1:
        check.error(path, f"set exactly one of {', '.join(_SOURCES)}")
    for source, value in d.items():
        allowed, required = _SOURCES[source]
        where = join(path, source)
        ref = check.fields(value, where, allowed, required=required)
        for key in ref or {}:
            if key == "optional":
                check.boolean(ref or {}, key, where, False)
            elif key == "divisor":
                if not quantity_ok((ref or {})[key]):
                    check.error(
                        join(where, key), f"must be {QUANTITY_WHAT}, got {describe((ref or {})[key])}"
                    )
            else:
                check.string(ref or {}, key, where, pattern=None, max_length=253, what="a non-empty string")


def parse_tolerations(check: Checker, raw: Any, path: str) -> tuple[Mapping[str, Any], ...]:
    if raw is None:
        return ()
    out: list[Mapping[str, Any]] = []
    allowed = ("key", "operator", "value", "effect", "tolerationSeconds")
    for i, item in enumerate(check.items(raw, path, 32)):
        where = f"{path}[{i}]"
        d = check.fields(item, where, allowed)
        if d is None:
            continue
        for name, limit in (("key", 317), ("value", 63)):
            text = d.get(name)
            if text is not None and (not isinstance(text, str) or len(text) > limit):
                got = describe(text)
                check.error(join(where, name), f"must be a string of at most {limit} characters, got {got}")
        operator = check.enum(d, "operator", where, choices=TOLERATION_OPERATORS, default="Equal")
        value = d.get("value")
        effect = check.enum(d, "effect", where, choices=TAINT_EFFECTS, default="") if "effect" in d else None
        check.integer(d, "tolerationSeconds", where, 0)
        if operator == "Exists" and value:
            check.error(join(where, "value"), "must be empty when operator is Exists")
        if not d.get("key") and operator != "Exists":
            check.error(join(where, "operator"), "must be Exists when key is empty (to tolerate every taint)")
        if "tolerationSeconds" in d and effect != "NoExecute":
            check.error(join(where, "tolerationSeconds"), "may only be set when effect is NoExecute")
        out.append(d)
    return tuple(out)


def parse_affinity(check: Checker, raw: Any, path: str) -> Mapping[str, Any]:
    if raw is None:
        return {}
    d = check.fields(raw, path, ("nodeAffinity", "podAffinity", "podAntiAffinity")) or {}
    for key, value in d.items():
        if not isinstance(value, Mapping) or not is_json(value):
            kind = key[0].upper() + key[1:]
            check.error(
                join(path, key), f"must be a Kubernetes {kind} object (a mapping), got {describe(value)}"
            )
    return d
