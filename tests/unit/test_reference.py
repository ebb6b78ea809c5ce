"""README.md's field reference is generated from the CRD and must be current."""

from __future__ import annotations

import pytest

from tests.support import reference


def test_readme_field_reference_is_current() -> None:
    readme = reference.README.read_text(encoding="utf-8")
    expected = reference.update(readme, reference.render())
    assert readme == expected, (
        "README.md's field reference is out of date with the CRD; "
        "run: .venv/bin/python -m tests.support.reference --write"
    )


def test_reference_lists_every_spec_field_with_its_default() -> None:
    text = reference.render()
    spec = reference.version_schema()["properties"]["spec"]["properties"]
    for name in spec:
        assert f"| `spec.{name}` |" in text
    assert "| `spec.concurrency` | integer | `2` | 1..1024 |" in text
    assert (
        "| `spec.autoscaling.mode` | string | `builtin` | `builtin` \\| `keda` \\| `hpa` \\| `off` |" in text
    )
    assert "- spec.autoscaling.minReplicas must be <= spec.autoscaling.maxReplicas" in text


def test_update_replaces_only_the_marked_section() -> None:
    readme = f"intro\n{reference.BEGIN}\nold\n{reference.END}\noutro\n"
    assert reference.update(readme, "new\n") == f"intro\n{reference.BEGIN}\nnew\n{reference.END}\noutro\n"
    with pytest.raises(ValueError, match="markers"):
        reference.update("no markers", "x")
