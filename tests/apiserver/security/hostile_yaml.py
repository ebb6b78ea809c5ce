"""Hostile QueueWorker manifests as YAML text: alias bombs, recursive aliases, deep nesting, and helpers
to wrap generated specs into manifests."""

from __future__ import annotations

from typing import Any

import yaml

HEAD = "apiVersion: queueworker.dev/v1alpha1\nkind: QueueWorker\nmetadata: {name: hostile}\n"


def manifest(spec: Any, name: str = "hostile", namespace: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": "queueworker.dev/v1alpha1", "kind": "QueueWorker", "metadata": meta, "spec": spec}


def alias_bomb(levels: int = 10, width: int = 9) -> str:
    """A "billion laughs" document: a few hundred bytes expanding to width**levels nodes."""
    lines = [
        "spec:",
        "  app: t",
        "  queues: [q]",
        "  schedules:",
        "  - name: s",
        "    task: t",
        "    every: 30s",
        "    kwargs:",
        f"      a0: &a0 [{', '.join(['lol'] * width)}]",
    ]
    for i in range(1, levels):
        lines.append(f"      a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]")
    return HEAD + "\n".join(lines) + "\n"


def recursive_alias() -> str:
    return HEAD + "spec: {app: t, queues: [q], schedules: [{name: s, task: t, every: 30s, args: &a [*a]}]}\n"


def deeply_nested(depth: int) -> str:
    return (
        HEAD
        + "spec: {app: t, queues: [q], schedules: [{name: s, task: t, every: 30s, args: "
        + "[" * depth
        + "]" * depth
        + "}]}\n"
    )


def nested_list(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def dump(doc: Any) -> str:
    return yaml.safe_dump(doc, sort_keys=False)


HOSTILE_TEXTS: dict[str, str | bytes] = {
    "alias bomb": alias_bomb(),
    "recursive alias": recursive_alias(),
    "nested 400 deep": deeply_nested(400),
    "nested 5000 deep": deeply_nested(5000),
    "python tag": HEAD + "spec: !!python/object/apply:os.system ['true']\n",
    "duplicate keys": HEAD + "spec: {app: t, queues: [q], queues: [r]}\n",
    "binary": b"\xff\xfe\x00\x01garbage\x80",
    "huge integer": HEAD + "spec: {app: t, queues: [q], concurrency: " + "9" * 5000 + "}\n",
    "tab indentation": HEAD + "spec:\n\tapp: t\n",
    "a megabyte of queues": HEAD
    + "spec: {app: t, queues: ["
    + ", ".join(f"q{i}" for i in range(150_000))
    + "]}\n",
    "empty": "",
    "only a comment": "# nothing here\n",
    "a list of manifests": "- " + HEAD.replace("\n", "\n  ") + "\n",
    "another kind": "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {password: cGFzcw==}\n",
}
