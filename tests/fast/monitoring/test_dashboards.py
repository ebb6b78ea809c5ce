"""The Grafana dashboards' structure: what Grafana needs to import them and what on-call needs in them.
(Every query is evaluated on a real Prometheus in tests/redis/monitoring/test_prometheus.py.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

DIR = Path(__file__).resolve().parents[3] / "charts" / "queueworker" / "dashboards"
DASHBOARDS = sorted(DIR.glob("*.json"))


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def test_overview_and_drill_down_exist() -> None:
    assert {load(p)["uid"] for p in DASHBOARDS} == {"queueworker-overview", "queueworker-queue"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_variables_panels_and_layout(path: Path) -> None:
    board = load(path)
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["namespace"]["query"]["query"].startswith("label_values(")
    assert variables["queue"]["query"]["query"] == "label_values(celery_queue_length, queue_name)"
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        xs, ys = range(pos["x"], pos["x"] + pos["w"]), range(pos["y"], pos["y"] + pos["h"])
        mine = {(x, y) for x in xs for y in ys}
        assert not cells & mine, f"{panel['title']} overlaps another panel"
        cells |= mine
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            assert target["expr"].strip()


def test_overview_covers_what_on_call_looks_at() -> None:
    overview = load(DIR / "queueworker-overview.json")
    exprs = " ".join(t["expr"] for p in overview["panels"] for t in p.get("targets", []))
    for metric in (
        "celery_queue_length",
        "queueworker_queue_oldest_wait_seconds",
        "queueworker_queue_target_wait_seconds",
        "celery_task_succeeded_total",
        "celery_task_failed_total",
        "queueworker_replicas_ready",
        "queueworker_replicas_desired",
        "queueworker_queue_busy_slots",
        "queueworker_scale_events_total",
        "queueworker_queue_orphaned",
    ):
        assert metric in exprs, metric
    assert overview["templating"]["list"][2]["multi"] is True
    drill = load(DIR / "queueworker-queue.json")
    assert drill["templating"]["list"][2]["multi"] is False
    assert all('queue_name="$queue"' in t["expr"] for p in drill["panels"] for t in p.get("targets", []))
