"""Rendering the chart with the real Helm engine (helm-python-sdk), for the chart tests."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "queueworker"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
RELEASE = "qw"
NAMESPACE = "queueworker-system"
K8S_VERSIONS = ("1.28.0", "1.34.0")
POD_OWNERS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicaSet", "Pod")

Obj = dict[str, Any]


@functools.cache
def chart() -> helm.Chart:
    return helm.Chart.load(str(CHART))


def load_values(path: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    return loaded if isinstance(loaded, dict) else {}


def render_files(
    values: dict[str, Any] | None = None,
    *,
    name: str = RELEASE,
    namespace: str = NAMESPACE,
    upgrade: bool = False,
) -> dict[str, str]:
    """{template path: rendered text}, templates that rendered to nothing dropped."""
    out = chart().render(
        values or {}, name=name, namespace=namespace, is_install=not upgrade, is_upgrade=upgrade
    )
    return {path: text for path, text in out.items() if text.strip()}


def _cached_key(values: dict[str, Any] | None) -> str:
    return json.dumps(values or {}, sort_keys=True)


@functools.cache
def _render_cached(key: str, name: str, namespace: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(render_files(json.loads(key), name=name, namespace=namespace).items()))


def render(
    values: dict[str, Any] | None = None, *, name: str = RELEASE, namespace: str = NAMESPACE
) -> list[Obj]:
    """Every object the chart renders (NOTES.txt excluded), in template order."""
    objects: list[Obj] = []
    for path, text in _render_cached(_cached_key(values), name, namespace):
        if path.endswith("NOTES.txt"):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


def notes(values: dict[str, Any] | None = None) -> str:
    for path, text in _render_cached(_cached_key(values), RELEASE, NAMESPACE):
        if path.endswith("NOTES.txt"):
            return text
    raise AssertionError("the chart rendered no NOTES.txt")


def manifest_text(values: dict[str, Any] | None = None) -> str:
    """The rendered output as one multi-document YAML stream, as `helm template` prints it."""
    parts = []
    for path, text in _render_cached(_cached_key(values), RELEASE, NAMESPACE):
        if path.endswith("NOTES.txt"):
            continue
        body = text.strip("\n")
        if not body.startswith("---"):
            body = "---\n" + body
        parts.append(f"# Source: {path}\n{body}\n")
    return "".join(parts)


def find(objects: list[Obj], kind: str, name: str | None = None) -> list[Obj]:
    return [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def one(objects: list[Obj], kind: str, suffix: str = "") -> Obj:
    found = [o for o in find(objects, kind) if o["metadata"]["name"].endswith(suffix)]
    assert len(found) == 1, (
        f"expected one {kind} named *{suffix}, got {[o['metadata']['name'] for o in found]}"
    )
    return found[0]


def pod_spec(obj: Obj) -> Obj | None:
    """The pod spec of a workload (or Pod); None for other kinds."""
    kind = obj["kind"]
    if kind == "Pod":
        return dict(obj["spec"])
    if kind == "CronJob":
        return dict(obj["spec"]["jobTemplate"]["spec"]["template"]["spec"])
    if kind in POD_OWNERS:
        return dict(obj["spec"]["template"]["spec"])
    return None


def containers(spec: Obj) -> Iterator[Obj]:
    yield from spec.get("initContainers") or []
    yield from spec.get("containers") or []
    yield from spec.get("ephemeralContainers") or []


def env_of(container: Obj) -> dict[str, Any]:
    """name -> value (a string) or valueFrom (a dict)."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env") or []}
