"""The QueueWorker CRD and its field reference, generated from the field table
(workers/queueworker/api/fields.py).

    python -m hack.crdgen --write   # write both CRD copies (operator/crds, the chart's) and docs/reference.md
    python -m hack.crdgen           # print the CRD
    python -m hack.crdgen --check   # exit 1 when a written file differs from what the table makes

`make crds` runs it with --write; tests/fast/unit/test_reference.py fails when a written file is out of date.
"""

from __future__ import annotations

import argparse
import sys
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from queueworker.api.fields import QUEUEWORKER
from queueworker.api.spec import GROUP, KIND, PLURAL, VERSION

from hack import reference

ROOT = Path(__file__).resolve().parents[1]
CRD_NAME = f"{GROUP}_{PLURAL}.yaml"
CRD_PATH = ROOT / "operator" / "crds" / CRD_NAME
CHART_CRD_PATH = ROOT / "charts" / "queueworker" / "crds" / CRD_NAME
CRD_PATHS = (CRD_PATH, CHART_CRD_PATH)
REFERENCE_PATH = ROOT / "docs" / "reference.md"

HEADER = """\
# The QueueWorker CustomResourceDefinition, generated from the field table in
# workers/queueworker/api/fields.py by `make crds` (python -m hack.crdgen --write): do not edit by hand.
# The same table drives the spec model (parse_manifest) and docs/reference.md; the operator's copy
# (operator/crds) and the Helm chart's (charts/queueworker/crds) are the same file.
"""

_COLUMNS = (
    ("Queues", "string", ".spec.queues", "The Celery queues the workers consume."),
    ("Mode", "string", ".spec.autoscaling.mode", "The autoscaling mode."),
    ("Ready", "integer", ".status.readyReplicas", "Worker pods ready."),
    ("Desired", "integer", ".status.desiredReplicas", "Worker pods wanted by the autoscaler."),
    ("Backlog", "integer", ".status.backlog", "Tasks waiting in the queues."),
    ("Oldest wait", "number", ".status.oldestWaitSeconds", "Seconds the oldest waiting task has waited."),
)


def crd() -> dict[str, Any]:
    """The CRD document: the API's names, one served version with the status and scale subresources,
    kubectl's columns, and the table's schema."""
    columns: list[dict[str, Any]] = [
        {"name": name, "type": kind, "jsonPath": path, "description": text}
        for name, kind, path, text in _COLUMNS
    ]
    columns.append({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"})
    version = {
        "name": VERSION,
        "served": True,
        "storage": True,
        "subresources": {
            "status": {},
            "scale": {
                "specReplicasPath": ".spec.replicas",
                "statusReplicasPath": ".status.replicas",
                "labelSelectorPath": ".status.selector",
            },
        },
        "additionalPrinterColumns": columns,
        "schema": {"openAPIV3Schema": QUEUEWORKER.schema()},
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{PLURAL}.{GROUP}",
            "labels": {"app.kubernetes.io/name": "queueworker", "app.kubernetes.io/component": "crd"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": KIND.lower(),
                "shortNames": ["qw"],
                "categories": ["all", "queueworker"],
            },
            "versions": [version],
        },
    }


class _Dumper(yaml.SafeDumper):
    """Block style, keys in the order given, no anchors for repeated values."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render_crd() -> str:
    body = yaml.dump(crd(), Dumper=_Dumper, sort_keys=False, width=110, allow_unicode=True)
    return HEADER + body


@cache
def load_crd(path: Path = CRD_PATH) -> dict[str, Any]:
    """A committed CRD file, as data."""
    with open(path, encoding="utf-8") as fh:
        loaded: dict[str, Any] = yaml.safe_load(fh)
    return loaded


def version_schema(document: dict[str, Any] | None = None, version: str = VERSION) -> dict[str, Any]:
    """The openAPIV3Schema of `version` in a CRD document (the committed operator copy by default)."""
    document = document or load_crd()
    for entry in document["spec"]["versions"]:
        if entry["name"] == version:
            schema: dict[str, Any] = entry["schema"]["openAPIV3Schema"]
            return schema
    raise KeyError(version)


def outputs() -> dict[Path, str]:
    """Every generated file and its text."""
    text = render_crd()
    return {
        **{path: text for path in CRD_PATHS},
        REFERENCE_PATH: reference.render(version_schema(crd())),
    }


def stale() -> list[Path]:
    """The generated files whose committed text differs from what the table makes."""
    return [
        path
        for path, text in outputs().items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true", help="write both CRD copies and docs/reference.md")
    group.add_argument("--check", action="store_true", help="exit 1 when a written file is out of date")
    args = parser.parse_args(argv)
    if args.check:
        old = stale()
        for path in old:
            print(f"{path.relative_to(ROOT)} is out of date: run make crds", file=sys.stderr)
        return 1 if old else 0
    if args.write:
        for path, text in outputs().items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
        return 0
    sys.stdout.write(render_crd())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
