"""The chart's dashboards and alert rules as tests read them: every panel query (with Grafana's variables
put in as Grafana would) and every alert rule. Shared by the local Prometheus tier and the e2e suite."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
ALERTS = REPO / "charts" / "queueworker" / "files" / "alerts.yaml"
DASHBOARDS = sorted((REPO / "charts" / "queueworker" / "dashboards").glob("*.json"))


def substitute(expr: str, queue: str, namespace: str, job: str = ".+", instance: str = ".+") -> str:
    """Grafana's variables as Grafana would put them in for one selection (job and instance: All)."""
    return (
        expr.replace("$__rate_interval", "1m")
        .replace("${queue}", queue)
        .replace("$queue", queue)
        .replace("${namespace}", namespace)
        .replace("$namespace", namespace)
        .replace("${job}", job)
        .replace("$job", job)
        .replace("${instance}", instance)
        .replace("$instance", instance)
    )


def panel_queries() -> list[tuple[str, str, str, str]]:
    """(dashboard file, panel title, legend, expr) of every query of every panel."""
    found = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                found.append((path.name, panel["title"], target.get("legendFormat", ""), target["expr"]))
    return found


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]
