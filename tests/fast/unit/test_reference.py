"""The files generated from the field table (workers/queueworker/api/fields.py) are current: both
committed copies of the CRD and docs/reference.md are exactly what `make crds` writes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hack import crdgen


@pytest.mark.parametrize("path", crdgen.CRD_PATHS, ids=lambda p: str(p.relative_to(crdgen.ROOT)))
def test_committed_crd_is_the_generated_one(path: Path) -> None:
    assert path.read_text(encoding="utf-8") == crdgen.render_crd(), (
        f"{path.relative_to(crdgen.ROOT)} differs from the field table; run: make crds"
    )
    assert yaml.safe_load(path.read_text(encoding="utf-8")) == crdgen.crd()


def test_reference_page_is_current() -> None:
    text = crdgen.REFERENCE_PATH.read_text(encoding="utf-8")
    assert text == crdgen.outputs()[crdgen.REFERENCE_PATH], (
        "docs/reference.md is out of date with the field table; run: make crds"
    )


def test_check_reports_a_stale_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    crds = (tmp_path / "operator.yaml", tmp_path / "chart.yaml")
    stale = tmp_path / "reference.md"
    stale.write_text("old\n")
    crds[0].write_text(crdgen.render_crd())
    monkeypatch.setattr(crdgen, "CRD_PATHS", crds)
    monkeypatch.setattr(crdgen, "REFERENCE_PATH", stale)
    monkeypatch.setattr(crdgen, "ROOT", tmp_path)
    assert crdgen.stale() == [crds[1], stale]  # missing or different
    assert crdgen.main(["--check"]) == 1
    assert crdgen.main(["--write"]) == 0
    assert crdgen.stale() == [] and crdgen.main(["--check"]) == 0


def test_reference_lists_every_spec_field_with_its_default() -> None:
    text = crdgen.REFERENCE_PATH.read_text(encoding="utf-8")
    spec = crdgen.version_schema()["properties"]["spec"]["properties"]
    for name in spec:
        assert f"| `spec.{name}` |" in text
    assert "| `spec.concurrency` | integer | `2` | 1..1024 |" in text
    assert (
        "| `spec.autoscaling.mode` | string | `builtin` | `builtin` \\| `keda` \\| `hpa` \\| `off` |" in text
    )
    assert "- spec.autoscaling.minReplicas must be <= spec.autoscaling.maxReplicas" in text
    assert text.startswith("# QueueWorker API reference\n") and "make crds" in text[:400]
