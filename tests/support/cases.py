"""The agreement corpus (tests/cases): manifests that the spec model and the API server must both accept,
or both refuse naming the same fields. It holds what the field table cannot derive: rules across fields,
Kubernetes' own types (resources, env, tolerations, affinity), the cron and interval grammar, metadata,
YAML pitfalls and whole valid QueueWorkers. Single-field bounds, patterns, enums and types are derived
from the table itself (tests/support/fieldcases.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from queueworker.api import kubeyaml

from hack.crdgen import ROOT

CASES = ROOT / "tests" / "cases"


class Case:
    """One corpus manifest; an invalid one declares its errors in header comments:
    `# expect: <field path>` (the spec model reports exactly these) and, rarely,
    `# crd-extra: <field path>` (a further path only the API server reports)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.valid = path.parent.name == "valid"
        self.text = path.read_text(encoding="utf-8")
        self.obj: Any = kubeyaml.load(self.text)  # as kubectl reads it
        self.expect = self._header("expect")
        self.crd_extra = self._header("crd-extra")

    def _header(self, key: str) -> list[str]:
        prefix = f"# {key}:"
        return [line[len(prefix) :].strip() for line in self.text.splitlines() if line.startswith(prefix)]

    @property
    def id(self) -> str:
        return f"{self.path.parent.name}/{self.path.stem}"


def load_cases() -> list[Case]:
    return [Case(p) for p in sorted(CASES.glob("*/*.yaml"))]
