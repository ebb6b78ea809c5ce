"""The test tiers, named by what they need (tests/README.md): each tier's conftest marks every test under
its folder with the tier's marker, so `pytest -m fast` (redis, apiserver, e2e) selects one tier wherever
its tests sit, and a test outside every tier folder has no tier (tests/fast/unit/test_tiers.py checks none
has)."""

from __future__ import annotations

from pathlib import Path

import pytest

#: The tiers, cheapest first: what each needs is in tests/README.md; the markers are in pyproject.toml.
TIERS = ("fast", "redis", "apiserver", "e2e")


def mark(items: list[pytest.Item], folder: Path, tier: str) -> None:
    """Give every collected test under `folder` the marker `tier` (one hook sees the whole session's
    items, so each tier's conftest marks only its own folder)."""
    assert tier in TIERS, tier
    marker = getattr(pytest.mark, tier)
    for item in items:
        if item.path.is_relative_to(folder):
            item.add_marker(marker)
