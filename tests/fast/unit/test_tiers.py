"""Every test file sits in one tier's folder (tests/README.md), so that every test gets exactly one tier's
marker and `make test-fast`, `test-redis`, `test-apiserver` and `e2e` together run the whole suite."""

from __future__ import annotations

from pathlib import Path

from tests.support.tiers import TIERS

TESTS = Path(__file__).resolve().parents[2]


def test_every_test_file_is_in_a_tier_folder() -> None:
    files = sorted(TESTS.rglob("test_*.py"))
    assert files
    outside = [str(f.relative_to(TESTS)) for f in files if f.relative_to(TESTS).parts[0] not in TIERS]
    assert outside == [], f"test files outside the tier folders {TIERS}: {outside}"


def test_every_tier_folder_marks_its_tests() -> None:
    for tier in TIERS:
        conftest = (TESTS / tier / "conftest.py").read_text(encoding="utf-8")
        assert f'tiers.mark(items, Path(__file__).parent, "{tier}")' in conftest, tier
