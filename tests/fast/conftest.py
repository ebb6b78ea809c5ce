"""The fast tier: pure functions, the chart (the real Helm engine), the alert rules and dashboards
(promtool, the dashboard linter). No Redis, no worker, no API server: nothing of ours runs for long."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import tiers


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    tiers.mark(items, Path(__file__).parent, "fast")
