"""README.md's field reference is generated from the CRD and must be current."""

from __future__ import annotations

import pytest

from hack import crdref


def test_readme_field_reference_is_current() -> None:
    readme = crdref.README.read_text(encoding="utf-8")
    expected = crdref.update(readme, crdref.render())
    assert readme == expected, (
        "README.md's field reference is out of date with the CRD; "
        "run: .venv/bin/python -m hack.crdref --write"
    )


def test_reference_lists_every_spec_field_with_its_default() -> None:
    text = crdref.render()
    spec = crdref.version_schema()["properties"]["spec"]["properties"]
    for name in spec:
        assert f"| `spec.{name}` |" in text
    assert "| `spec.concurrency` | integer | `2` | 1..1024 |" in text
    assert (
        "| `spec.autoscaling.mode` | string | `builtin` | `builtin` \\| `keda` \\| `hpa` \\| `off` |" in text
    )
    assert "- spec.autoscaling.minReplicas must be <= spec.autoscaling.maxReplicas" in text


def test_update_replaces_only_the_marked_section() -> None:
    readme = f"intro\n{crdref.BEGIN}\nold\n{crdref.END}\noutro\n"
    assert crdref.update(readme, "new\n") == f"intro\n{crdref.BEGIN}\nnew\n{crdref.END}\noutro\n"
    with pytest.raises(ValueError, match="markers"):
        crdref.update("no markers", "x")
