"""The vocabulary of the QueueWorker field table (api/fields.py): a `Field` describes one field of the API
once (type, default, bounds, pattern, enum, description) and a `Rule` one cross-field rule (its CEL
expression for the API server and its Python check for the spec model). `Field.schema()` is the field as
the CRD's OpenAPI v3 schema; api/walk.py reads a manifest by the same fields.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from queueworker.api.checks import Checker

STRING = "string"
INTEGER = "integer"
NUMBER = "number"
BOOLEAN = "boolean"
OBJECT = "object"
ARRAY = "array"
QUANTITY = "quantity"  # Kubernetes' int-or-string resource quantity
ANY = "any"  # any JSON value (kept as given)


@dataclass(frozen=True)
class Node:
    """What a rule's Python check sees of one object: its non-null entries as given (`raw`), the entries
    that were valid on their own, defaults filled in (`values`), and its field path."""

    raw: Mapping[str, Any]
    values: Mapping[str, Any]
    path: str


@dataclass(frozen=True)
class Rule:
    """A rule across fields of one object: `cel` and `message` go into the CRD (x-kubernetes-validations),
    `check` is the same rule for the spec model, reporting through the Checker with the field and the fix.
    """

    cel: str
    message: str
    check: Callable[[Checker, Node], None]
    field_path: str | None = None  # e.g. ".minReplicas": the field the API server names
    reason: str | None = "FieldValueInvalid"

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rule": self.cel, "message": self.message}
        if self.field_path is not None:
            out["fieldPath"] = self.field_path
        if self.reason is not None:
            out["reason"] = self.reason
        return out


#: A reader for a field the generic walk cannot read: (checker, value, field path, the field) -> the value.
Parse = Callable[[Checker, Any, str, "Field"], Any]


@dataclass(frozen=True)
class Field:
    """One field of the API. `what` (how the spec model names the expected form in its messages) and
    `hint` (what a missing required field's message suggests) are the model's; the rest is the CRD's."""

    name: str
    type: str
    description: str = ""
    required: bool = False
    default: Any = None  # None: no default
    format: str | None = None
    minimum: int | float | None = None
    maximum: int | float | None = None
    exclusive_minimum: bool = False
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    enum: tuple[str, ...] = ()
    min_items: int | None = None
    max_items: int | None = None
    max_properties: int | None = None
    list_type: str | None = None
    map_keys: tuple[str, ...] = ()
    fields: tuple[Field, ...] = ()
    items: Field | None = None  # an array's items
    values: Field | None = None  # a map's values (additionalProperties)
    preserve_unknown: bool = False
    rules: tuple[Rule, ...] = ()
    what: str = ""
    hint: str = ""
    parse: Parse | None = field(default=None, compare=False)
    duplicate: str = ""  # a list-map's message for a repeated key, e.g. "duplicate schedule name {!r}"

    @property
    def regex(self) -> re.Pattern[str] | None:
        """The pattern, compiled (Python's `re` reads the CRD's patterns the same way)."""
        return _compiled(self.pattern) if self.pattern is not None else None

    def child(self, name: str) -> Field:
        for sub in self.fields:
            if sub.name == name:
                return sub
        raise KeyError(name)

    def at(self, path: str) -> Field:
        """The field at a dotted path below this one, e.g. `autoscaling.minReplicas`; `[]` steps into a
        list's items (`schedules[].cron`)."""
        node = self
        for part in path.split("."):
            list_item = part.endswith("[]")
            node = node.child(part.removesuffix("[]"))
            if list_item:
                assert node.items is not None, part
                node = node.items
        return node

    def schema(self) -> dict[str, Any]:
        """The field as an OpenAPI v3 schema node of the CRD."""
        out: dict[str, Any] = {}
        if self.type == QUANTITY:
            out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
            out["x-kubernetes-int-or-string"] = True
        elif self.type != ANY:
            out["type"] = self.type
        simple = (
            ("format", self.format),
            ("minimum", self.minimum),
            ("maximum", self.maximum),
            ("minLength", self.min_length),
            ("maxLength", self.max_length),
            ("pattern", self.pattern),
            ("minItems", self.min_items),
            ("maxItems", self.max_items),
            ("maxProperties", self.max_properties),
            ("x-kubernetes-list-type", self.list_type),
        )
        out.update((key, value) for key, value in simple if value is not None)
        if self.exclusive_minimum:
            out["exclusiveMinimum"] = True
        if self.enum:
            out["enum"] = list(self.enum)
        if self.map_keys:
            out["x-kubernetes-list-map-keys"] = list(self.map_keys)
        if self.default is not None:
            out["default"] = _copy(self.default)
        if self.preserve_unknown:
            out["x-kubernetes-preserve-unknown-fields"] = True
        if self.description:
            out["description"] = self.description
        required = [sub.name for sub in self.fields if sub.required]
        if required:
            out["required"] = required
        if self.rules:
            out["x-kubernetes-validations"] = [rule.schema() for rule in self.rules]
        if self.fields:
            out["properties"] = {sub.name: sub.schema() for sub in self.fields}
        if self.items is not None:
            out["items"] = self.items.schema()
        if self.values is not None:
            out["additionalProperties"] = self.values.schema()
        return out

    def defaults(self) -> dict[str, Any]:
        """An object's fields' defaults, e.g. {"mode": "builtin", "minReplicas": 1, ...}."""
        return {sub.name: sub.default for sub in self.fields if sub.default is not None}


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_copy(v) for v in value]
    return value


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)
