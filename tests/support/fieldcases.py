"""Single-field cases derived from the field table (workers/queueworker/api/fields.py): for every field
the spec model reads by the table alone (no `parse` of its own), its bounds, pattern, enum, type,
required-ness and known keys give values on both sides of each limit. The unit tier checks the spec
model's verdict on each (tests/fast/unit/test_field_table.py), the API server tier that the CRD's verdict is
the same (tests/apiserver/test_field_table.py). tests/cases keeps what the table cannot derive: rules
across fields, Kubernetes' own types and the grammar fields with readers of their own.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from queueworker.api.checks import APP, DNS_LABEL, DNS_SUBDOMAIN, INT32_MAX, NO_SPACE, QUEUE
from queueworker.api.fields import SPEC
from queueworker.api.schema import ARRAY, BOOLEAN, INTEGER, NUMBER, OBJECT, STRING, Field
from queueworker.api.spec import SpecError, parse_manifest

#: A QueueWorker the model and the CRD accept, with one schedule to hang schedule fields on.
BASE: dict[str, Any] = {
    "apiVersion": "queueworker.dev/v1alpha1",
    "kind": "QueueWorker",
    "metadata": {"name": "emails"},
    "spec": {
        "app": "shop.tasks",
        "queues": ["emails"],
        "schedules": [{"name": "s", "task": "t.a", "every": "30s"}],
    },
}
ABSENT = object()

#: Values on both sides of each pattern the table uses, beyond the space every pattern refuses: the parts
#: of a pattern a user trips on (two colons in an app, a queue or a name that starts with a dash, capitals
#: in a DNS name). Keyed by the pattern's text, so a field picks its probes up by the pattern it carries.
PATTERN_PROBES: dict[str, tuple[tuple[str, bool], ...]] = {
    APP.pattern: (
        ("shop:tasks:app", False),
        ("shop.tasks:", False),
        ("9shop", False),
        ("shop.tasks:app", True),
    ),
    QUEUE.pattern: (("-bulk", False), (".hidden", False), ("Bulk.mail:eu-1_a", True)),
    DNS_LABEL.pattern: (("Digest_Daily", False), ("-digest", False), ("digest-", False), ("digest-7", True)),
    DNS_SUBDOMAIN.pattern: (("My_SA", False), ("a..b", False), ("team.workers-1", True)),
    NO_SPACE.pattern: (("a\tb", False), ("shop.tasks.*", True)),
}


@dataclass(frozen=True)
class FieldCase:
    path: str  # the field's path in the model's style: spec.schedules[0].name
    value: Any  # ABSENT: the field is left out
    valid: bool
    why: str
    pattern: str | None = None  # the pattern a probe case exercises

    @property
    def id(self) -> str:
        return f"{self.path}:{self.why}"

    def manifest(self) -> dict[str, Any]:
        obj = copy.deepcopy(BASE)
        *parents, leaf = self.path.replace("[0]", ".0").split(".")
        node: Any = obj
        for part in parents:
            node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
        if self.value is ABSENT:
            node.pop(leaf, None)
        elif leaf.isdigit():
            node[int(leaf)] = self.value
        else:
            node[leaf] = self.value
        # Keep the rules across fields (api/rules.py) out of single-field cases: a schedule's queue is
        # one of spec.queues, and minReplicas <= maxReplicas.
        if leaf == "queue" and self.valid:
            obj["spec"]["queues"].append(self.value)
        if leaf == "minReplicas":
            node["maxReplicas"] = INT32_MAX
        return obj


def field_cases() -> list[FieldCase]:
    return list(_walk(SPEC, "spec"))


def _walk(node: Field, path: str) -> Iterator[FieldCase]:
    yield FieldCase(f"{path}.notAField", 1, False, "unknown-field")
    if node.type == OBJECT and path != "spec":
        yield FieldCase(path, "text", False, "not-an-object")
    for sub in node.fields:
        if sub.parse is not None:
            continue  # read by code of its own: tests/cases and the grammar tests cover it
        where = f"{path}.{sub.name}"
        if sub.required:
            yield FieldCase(where, ABSENT, False, "missing")
        if sub.type == OBJECT and sub.fields:
            yield from _walk(sub, where)
        elif sub.type == ARRAY and sub.items is not None and sub.items.fields:
            yield FieldCase(where, "text", False, "not-a-list")
            yield from _walk(sub.items, f"{where}[0]")
        else:
            yield from _values(sub, where)


def _values(field: Field, where: str) -> Iterator[FieldCase]:
    if field.type == INTEGER:
        yield FieldCase(where, "2", False, "string")
        yield FieldCase(where, True, False, "boolean")
        yield FieldCase(where, 2.5, False, "fraction")
        low, high = int(field.minimum or 0), int(field.maximum or INT32_MAX)
        yield FieldCase(where, low - 1, False, "below-minimum")
        yield FieldCase(where, high + 1, False, "above-maximum")
        yield FieldCase(where, low, True, "minimum")
        yield FieldCase(where, high, True, "maximum")
    elif field.type == NUMBER:
        assert field.minimum is not None and field.maximum is not None
        yield FieldCase(where, "30s", False, "string")
        yield FieldCase(where, field.minimum, False, "exclusive-minimum")
        yield FieldCase(where, field.maximum + 1, False, "above-maximum")
        yield FieldCase(where, field.maximum, True, "maximum")
        yield FieldCase(where, field.minimum + 0.5, True, "fraction")
    elif field.type == BOOLEAN:
        yield FieldCase(where, "yes", False, "string")
        yield FieldCase(where, False, True, "false")
    elif field.type == STRING and field.enum:
        yield FieldCase(where, "nope", False, "not-in-enum")
        yield FieldCase(where, field.enum[0].upper(), False, "case")
        for choice in field.enum:
            yield FieldCase(where, choice, True, f"enum-{choice}")
    elif field.type == STRING:
        yield from _strings(field, where, lambda value: value)
    elif field.type == ARRAY and field.items is not None:
        yield FieldCase(where, "text", False, "not-a-list")
        yield FieldCase(where, [f"q{i}" for i in range((field.max_items or 0) + 1)], False, "too-many")
        if field.min_items:
            yield FieldCase(where, [], False, "too-few")
        yield FieldCase(where, ["a", "a"], False, "duplicate")
        yield from _strings(field.items, where, lambda value: [value], "item-")
    elif field.type == OBJECT and field.values is not None:
        yield FieldCase(where, ["a"], False, "not-a-map")
        yield FieldCase(where, {"disk": 1}, False, "value-not-string")
        yield FieldCase(where, {"disk": "x" * ((field.values.max_length or 0) + 1)}, False, "value-too-long")
        entries = {f"k{i}": "v" for i in range((field.max_properties or 0) + 1)}
        yield FieldCase(where, entries, False, "too-many")
        yield FieldCase(where, {"disk": "ssd"}, True, "map")


def _strings(field: Field, where: str, wrap: Any, prefix: str = "") -> Iterator[FieldCase]:
    """A string field's cases; `wrap` puts the string where it goes (a list's item)."""
    yield FieldCase(where, wrap(7), False, f"{prefix}number")
    if field.min_length:
        yield FieldCase(where, wrap(""), False, f"{prefix}empty")
    if field.max_length is not None:
        yield FieldCase(where, wrap("a" * (field.max_length + 1)), False, f"{prefix}too-long")
        yield FieldCase(where, wrap("a" * field.max_length), True, f"{prefix}longest")
    if field.pattern is not None:
        yield FieldCase(where, wrap("a b"), False, f"{prefix}pattern")
        for n, (value, valid) in enumerate(PATTERN_PROBES.get(field.pattern, ())):
            yield FieldCase(
                where, wrap(value), valid, f"{prefix}pattern-{'ok' if valid else 'bad'}-{n}", field.pattern
            )


def model_paths(obj: Any) -> list[str]:
    """The field paths the spec model's parser names for one manifest (none when it accepts it)."""
    try:
        parse_manifest(obj)
    except SpecError as exc:
        return [e.path for e in exc.errors]
    return []
