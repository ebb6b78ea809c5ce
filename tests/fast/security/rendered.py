"""What `qw render` (the operator's builders) and the chart produce, for the secret and access checks:
every example manifest and generated valid ones, every CI values scenario of the chart."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from queueworker.api.manifests import load_manifests
from queueworker.api.spec import QueueWorker, SpecError, parse_manifest
from queueworker.builders import problems, render
from queueworker.settings import Settings

from tests.support.rendering import CI_VALUES, load_values, pod_spec
from tests.support.rendering import render as render_chart

REPO = Path(__file__).resolve().parents[3]
EXAMPLE_FILES = sorted((REPO / "examples").rglob("*.yaml"))
BROKER_ENV = ("QUEUEWORKER_BROKER_URL", "QUEUEWORKER_REDIS_URL")
Obj = dict[str, Any]


def example_queueworkers(namespace: str = "default") -> list[QueueWorker]:
    qws = []
    for path in EXAMPLE_FILES:
        for loaded in load_manifests(path, default_namespace=namespace):
            assert loaded.qw is not None, loaded.errors
            qws.append(loaded.qw)
    return qws


def built(manifest: Obj, settings: Settings | None = None) -> list[Obj]:
    """The objects the operator builds for one valid manifest (its namespace's shared ones included);
    empty when the builders cannot build it (`problems`, e.g. mode hpa on a queue name no selector holds)."""
    try:
        qw = parse_manifest(manifest)
    except SpecError as exc:
        raise AssertionError(f"not a valid manifest: {exc}") from exc
    return [] if problems(qw) else render([qw], settings or Settings())


def chart_scenarios() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in CI_VALUES:
        yield path.name, load_values(path)


def chart_objects(values: dict[str, Any]) -> list[Obj]:
    return render_chart(values)


def pod_templates(objects: list[Obj]) -> Iterator[tuple[str, Obj, Obj]]:
    """(where, pod template metadata, pod spec) of every workload."""
    for obj in objects:
        spec = pod_spec(obj)
        if spec is None:
            continue
        template = obj.get("spec", {}).get("template", {})
        meta = obj["metadata"] if obj["kind"] == "Pod" else template.get("metadata", {})
        yield f"{obj['kind']}/{obj['metadata'].get('namespace', '')}/{obj['metadata']['name']}", meta, spec


def text_of(obj: Obj) -> str:
    return json.dumps(obj, sort_keys=True)
