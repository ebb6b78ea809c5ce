"""The README field reference, generated from the CRD's schema (types, defaults, bounds, descriptions).

    python -m hack.crdref --write   # rewrite the section between the markers in README.md
    python -m hack.crdref           # print it

tests/unit/test_reference.py fails when README.md is out of date.
"""

from __future__ import annotations

import argparse
import sys
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CRD_PATH = ROOT / "operator" / "crds" / "queueworker.dev_queueworkers.yaml"
BEGIN = "<!-- fields:begin -->"
END = "<!-- fields:end -->"
LONG_PATTERN = 48


@cache
def load_crd(path: Path = CRD_PATH) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        crd: dict[str, Any] = yaml.safe_load(fh)
    return crd


def version_schema(crd: dict[str, Any] | None = None, version: str = "v1alpha1") -> dict[str, Any]:
    crd = crd or load_crd()
    for entry in crd["spec"]["versions"]:
        if entry["name"] == version:
            schema: dict[str, Any] = entry["schema"]["openAPIV3Schema"]
            return schema
    raise KeyError(version)


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


def render() -> str:
    schema = version_schema(load_crd())
    spec, status = schema["properties"]["spec"], schema["properties"]["status"]
    lines = [
        "Generated from `operator/crds/queueworker.dev_queueworkers.yaml` by "
        "`python -m hack.crdref --write`; do not edit by hand.",
        "",
        "### spec",
        "",
        *_table(_rows(spec, "spec")[1:]),
        "",
        "Cross-field rules (checked by the API server and by `qw render`):",
        "",
        *_rules(spec),
        "",
        "### status (written by the operator)",
        "",
        *_table(_rows(status, "status")[1:]),
    ]
    return "\n".join(lines) + "\n"


def update(readme: str, section: str) -> str:
    """`readme` with the text between the markers replaced by `section`."""
    head, sep, rest = readme.partition(BEGIN)
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        raise ValueError(f"README.md lacks the markers {BEGIN} ... {END}")
    return f"{head}{BEGIN}\n{section}{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite the field reference in README.md")
    args = parser.parse_args(argv)
    section = render()
    if args.write:
        README.write_text(update(README.read_text(encoding="utf-8"), section), encoding="utf-8")
    else:
        sys.stdout.write(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
