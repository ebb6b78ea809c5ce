"""The worker's settings table (queueworker.worker.settings): the docs table is generated from it, every
QUEUEWORKER_* variable the worker package names is in it, and bad values are refused with the variable's
name (a secret's value never shown)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from queueworker.worker.settings import PREFIX, WorkerSettings, markdown

REPO = Path(__file__).resolve().parents[3]


def test_the_docs_table_is_generated_from_the_settings() -> None:
    doc = (REPO / "docs" / "worker-settings.md").read_text()
    assert doc == markdown(), "run: python -m queueworker.worker.settings > docs/worker-settings.md"


def test_every_variable_the_worker_package_names_is_in_the_table() -> None:
    table = {PREFIX + f.name.upper() for f in dataclasses.fields(WorkerSettings)}
    named: set[str] = set()
    for path in (REPO / "workers" / "queueworker" / "worker").rglob("*.py"):
        named |= set(re.findall(r"QUEUEWORKER_[A-Z_]+[A-Z]", path.read_text()))
    assert named <= table, f"not in the settings table: {sorted(named - table)}"


def test_values_are_typed_and_defaults_apply() -> None:
    settings = WorkerSettings.from_env(
        {
            "QUEUEWORKER_HEARTBEAT_TTL": "7",
            "QUEUEWORKER_ATOMIC_FETCH": "0",
            "QUEUEWORKER_MAX_REDELIVERIES": "5",
        }
    )
    assert (settings.heartbeat_ttl, settings.atomic_fetch, settings.max_redeliveries) == (7.0, False, 5)
    assert settings.publish_retry_seconds == 30.0 and settings.sentinel_master == "mymaster"
    assert settings.readiness_age == 3 * settings.heartbeat_interval + 1


def test_bad_values_name_the_variable() -> None:
    with pytest.raises(ValueError) as info:
        WorkerSettings.from_env({"QUEUEWORKER_VISIBILITY_TIMEOUT": "-1", "QUEUEWORKER_ATOMIC_FETCH": "maybe"})
    assert "QUEUEWORKER_VISIBILITY_TIMEOUT" in str(info.value)
    assert "QUEUEWORKER_ATOMIC_FETCH='maybe'" in str(info.value)
