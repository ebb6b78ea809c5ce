"""docs/reference.md, the QueueWorker field reference: a table per object (types, defaults, bounds,
descriptions) and the cross-field rules, rendered from the CRD schema that hack/crdgen.py makes from
the field table. `python -m hack.crdgen --write` writes it."""

from __future__ import annotations

from typing import Any

LONG_PATTERN = 48
HEADER = """\
# QueueWorker API reference

Every field of the QueueWorker resource (`queueworker.dev/v1alpha1`), generated from the field table in
`workers/queueworker/api/fields.py` by `make crds` (`python -m hack.crdgen --write`); do not edit by
hand. The same table makes the CRD, which the API server checks, and the checks of `qw render` and the
operator, so both accept and refuse the same manifests with these rules.
"""


def _type(node: dict[str, Any]) -> str:
    if node.get("x-kubernetes-int-or-string"):
        return "quantity"
    kind = node.get("type")
    if kind == "array":
        return f"[]{_type(node.get('items', {}))}"
    if kind == "object" and isinstance(node.get("additionalProperties"), dict):
        return f"map[string]{_type(node['additionalProperties'])}"
    if kind is None:
        return "any"
    if node.get("format") == "date-time":
        return "string (date-time)"
    return str(kind)


def _code(value: Any) -> str:
    if isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, dict | list):
        text = "{}" if value == {} else str(value)
    else:
        text = str(value)
    return f"`{text}`"


def _bounds(node: dict[str, Any], required: bool) -> list[str]:
    out: list[str] = ["required"] if required else []
    if "enum" in node:
        out.append(" \\| ".join(_code(v) for v in node["enum"]))
    low, high = node.get("minimum"), node.get("maximum")
    if node.get("exclusiveMinimum") and low is not None:
        out.append(f"> {low}" + (f", <= {high}" if high is not None else ""))
    elif low is not None and high is not None and high < 2**31 - 1:
        out.append(f"{low}..{high}")
    elif low is not None and not node.get("x-kubernetes-int-or-string"):
        out.append(f">= {low}")
    if "minItems" in node or "maxItems" in node:
        out.append(f"{node.get('minItems', 0)}..{node['maxItems']} items")
    if "maxProperties" in node:
        out.append(f"at most {node['maxProperties']} entries")
    if "maxLength" in node and node.get("type") == "string":
        out.append(f"length {node.get('minLength', 0)}..{node['maxLength']}")
    pattern = node.get("pattern")
    if pattern and len(pattern) <= LONG_PATTERN:
        out.append(f"pattern `{pattern}`")
    items = node.get("items", {})
    if node.get("type") == "array" and items.get("type") in ("string", "integer", "number"):
        out += [f"each {b}" for b in _bounds(items, False)]
    list_type = node.get("x-kubernetes-list-type")
    if list_type == "set":
        out.append("unique")
    elif list_type == "map":
        out.append("unique " + ", ".join(node.get("x-kubernetes-list-map-keys", [])))
    return out


def _escape(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _rows(node: dict[str, Any], path: str, required: bool = False) -> list[list[str]]:
    default = ""
    if isinstance(node.get("default"), dict):
        default = "its fields' defaults"
    elif "default" in node:
        default = _code(node["default"])
    rows = [[f"`{path}`", _escape(_type(node)), default, ", ".join(_bounds(node, required)),
             _escape(node.get("description", ""))]]  # fmt: skip
    items = node.get("items", {})
    target, prefix = (items, f"{path}[]") if items.get("type") == "object" else (node, path)
    needed = set(target.get("required", []))
    for name, sub in target.get("properties", {}).items():
        if sub.get("x-kubernetes-preserve-unknown-fields") and "type" not in sub:
            continue
        rows += _rows(sub, f"{prefix}.{name}", name in needed)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict) and extra.get("type") == "object":
        rows += _rows(extra, f"{path}[*]")
    return rows


def _table(rows: list[list[str]]) -> list[str]:
    lines = ["| Field | Type | Default | Allowed | Description |", "|---|---|---|---|---|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _rules(node: dict[str, Any]) -> list[str]:
    out = [f"- {rule['message']}" for rule in node.get("x-kubernetes-validations", [])]
    for sub in node.get("properties", {}).values():
        out += _rules(sub)
    if isinstance(node.get("items"), dict):
        out += _rules(node["items"])
    return out


def render(schema: dict[str, Any]) -> str:
    """The page for a version's openAPIV3Schema."""
    spec, status = schema["properties"]["spec"], schema["properties"]["status"]
    lines = [
        HEADER,
        "## spec",
        "",
        *_table(_rows(spec, "spec")[1:]),
        "",
        "Cross-field rules (checked by the API server and by `qw render`):",
        "",
        *_rules(spec),
        "",
        "## status (written by the operator)",
        "",
        *_table(_rows(status, "status")[1:]),
    ]
    return "\n".join(lines) + "\n"
