"""The alert rules: a valid rules file, and promtool unit tests showing every alert fire and stay quiet."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).parent
RULES = HERE.parents[2] / "charts" / "queueworker" / "files" / "alerts.yaml"
UNIT_TESTS = HERE / "alerts_test.yaml"
ALERTS = {
    "QueueWorkerQueueOrphaned",
    "QueueWorkerWaitAboveTarget",
    "QueueWorkerFailureRatioHigh",
    "QueueWorkerWorkersDown",
    "QueueWorkerExporterDown",
    "QueueWorkerBrokerDown",
}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], cwd=HERE, capture_output=True, text=True, timeout=120)


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_rules_file_passes_promtool_check() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    result = promtool("test", "rules", UNIT_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_alerts_of_the_design_are_all_there_with_severity_summary_description_and_for() -> None:
    assert {rule["alert"] for rule in rules()} == ALERTS
    for rule in rules():
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        assert "Check" in rule["annotations"]["description"], f"{rule['alert']}: say what to check"
        assert rule["for"].endswith("m") and int(rule["for"][:-1]) >= 2, rule["alert"]


def test_every_alert_rule_is_tested_firing_and_quiet() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in yaml.safe_load(UNIT_TESTS.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
            for alert in check.get("exp_alerts") or []:
                assert set(alert["exp_annotations"]) == {"summary", "description"}
    assert firing == ALERTS
    assert quiet == ALERTS
    # both rules named QueueWorkerWorkersDown (replicas, heartbeats) fire in some case
    causes = {
        alert["exp_labels"].get("cause")
        for case in yaml.safe_load(UNIT_TESTS.read_text())["tests"]
        for check in case.get("alert_rule_test", [])
        for alert in check.get("exp_alerts") or []
    }
    assert {"replicas", "heartbeats"} <= causes
