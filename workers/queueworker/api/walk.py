"""Reading a manifest by the field table (api/fields.py): each field's type, default, bounds, pattern
and enum decide how its value is checked, the object's rules (api/rules.py) run on what was read, and
every problem is recorded with its field path so that checking goes on and reports all at once.

`read_object` gives the object's values that are valid on their own (absent fields with a default get
it; a nested object or list of objects is kept as far as it was readable), for api/spec.py to build
the typed model from.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from queueworker.api.checks import INT32_MAX, Checker, join
from queueworker.api.schema import ARRAY, BOOLEAN, INTEGER, NUMBER, OBJECT, STRING, Field, Node

Values = dict[str, Any]


def read_object(check: Checker, raw: Any, path: str, node: Field) -> Values | None:
    """The values of the object `raw` at `path` described by `node`; None when it is not a mapping."""
    names = [sub.name for sub in node.fields]
    required = {sub.name: sub.hint for sub in node.fields if sub.required}
    d = check.fields(raw, path, names, required=required)
    if d is None:
        return None
    values: Values = {}
    for sub in node.fields:
        before = len(check.errors)
        value = read(check, d, path, sub)
        nested = sub.type == OBJECT or (sub.type == ARRAY and sub.items is not None and sub.items.fields)
        if value is not None and (nested or len(check.errors) == before):
            values[sub.name] = value
    for rule in node.rules:
        rule.check(check, Node(d, values, path))
    return values


def read(check: Checker, d: Mapping[str, Any], path: str, field: Field) -> Any:
    """The value of `field` in the mapping `d` (at `path`), checked; its default when absent."""
    key, where = field.name, join(path, field.name)
    if key not in d:
        if field.type == OBJECT and field.fields and field.parse is None:
            return read_object(check, {}, where, field)  # its fields' defaults
        return field.default
    if field.parse is not None:
        return field.parse(check, d[key], where, field)
    if field.type == INTEGER:
        low = int(field.minimum or 0)
        high = int(field.maximum) if field.maximum is not None else INT32_MAX
        return check.integer(d, key, path, field.default or 0, minimum=low, maximum=high)
    if field.type == NUMBER:
        assert field.exclusive_minimum and field.minimum is not None and field.maximum is not None
        return check.number(d, key, path, field.default, above=field.minimum, maximum=field.maximum)
    if field.type == BOOLEAN:
        return check.boolean(d, key, path, field.default)
    if field.type == STRING and field.enum:
        return check.enum(d, key, path, choices=field.enum, default=field.default or "")
    if field.type == STRING:
        return check.string(
            d, key, path, pattern=field.regex, max_length=field.max_length or 0, what=field.what
        )
    if field.type == ARRAY and field.items is not None and field.items.type == STRING:
        return check.string_set(
            d,
            key,
            path,
            pattern=field.items.regex,
            max_length=field.items.max_length or 0,
            what=field.items.what,
            max_items=field.max_items or 0,
            min_items=field.min_items or 0,
        )
    if field.type == ARRAY and field.items is not None and field.items.fields:
        return _read_list(check, d[key], where, field)
    if field.type == OBJECT and field.values is not None:
        limit = field.values.max_length or 0
        return check.string_map(d, key, path, max_items=field.max_properties or 0, max_length=limit)
    if field.type == OBJECT and field.fields:
        return read_object(check, d[key], where, field)
    raise NotImplementedError(f"{where}: no reader for this field of the table")


def _read_list(check: Checker, raw: Any, where: str, field: Field) -> list[Values]:
    """A list of objects; a list-map's keys (x-kubernetes-list-map-keys) must be unique."""
    assert field.items is not None
    out: list[Values] = []
    seen: set[Any] = set()
    for i, item in enumerate(check.items(raw, where, field.max_items or 0, field.min_items or 0)):
        at = f"{where}[{i}]"
        values = read_object(check, item, at, field.items)
        out.append(values or {})
        if values is None or not field.map_keys:
            continue
        (map_key,) = field.map_keys
        value = values.get(map_key)
        if value is not None and value in seen:
            check.error(join(at, map_key), field.duplicate.format(value))
        seen.add(value)
    return out
