"""The dashboards pass every rule of Grafana's dashboard-linter (as kubernetes-mixin runs it: `--strict`,
no exclusions), and each rule fails the fault it exists for on a dashboard built here."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.dashboard_lint import expand, panels, templates
from tests.support.dashboard_rules import RULES, lint
from tests.support.monitoring import DASHBOARDS

Board = dict[str, Any]
DS = {"type": "prometheus", "uid": "${datasource}"}


def variable(name: str, metric: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": name.title(),
        "type": "query",
        "datasource": DS,
        "query": {"query": f"label_values({metric}, {name})", "refId": name},
        "refresh": 2,
        "multi": True,
        "includeAll": True,
        "allValue": ".+",
        "current": {"text": ["All"], "value": ["$__all"]},
        "options": [],
    }


def target(expr: str) -> dict[str, Any]:
    return {"refId": "A", "datasource": DS, "expr": expr}


def good_board() -> Board:
    """A small dashboard that passes every rule: the fixture each fault is made in."""
    sel = 'job=~"$job", instance=~"$instance", queue_name=~"$queue"'
    return {
        "title": "Fixture",
        "editable": False,
        "templating": {
            "list": [
                {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus"},
                variable("job", "up"),
                variable("instance", "up"),
                {**variable("queue", "celery_queue_length"), "allValue": ".*", "label": "Queue"},
            ]
        },
        "panels": [
            {
                "id": 1,
                "type": "stat",
                "title": "Backlog",
                "description": "Tasks waiting.",
                "datasource": DS,
                "fieldConfig": {"defaults": {"unit": "short"}, "overrides": []},
                "options": {"reduceOptions": {"fields": ""}},
                "targets": [target(f"sum(celery_queue_length{{{sel}}})")],
            },
            {
                "id": 2,
                "type": "row",
                "title": "Rates",
                "collapsed": True,
                "panels": [
                    {
                        "id": 3,
                        "type": "timeseries",
                        "title": "Throughput",
                        "description": "Tasks a second.",
                        "datasource": DS,
                        "fieldConfig": {
                            "defaults": {"unit": "s"},
                            "overrides": [{"matcher": {}, "properties": [{"id": "unit", "value": "reqps"}]}],
                        },
                        "targets": [
                            target(f"sum(rate(celery_task_succeeded_total{{{sel}}}[$__rate_interval]))"),
                            target(f"sum(increase(celery_task_failed_total{{{sel}}}[1h]))"),
                        ],
                    }
                ],
            },
            {
                "id": 4,
                "type": "stat",
                "title": "Broker",
                "description": "UP or DOWN.",
                "datasource": DS,
                "fieldConfig": {"defaults": {"mappings": [{"type": "value", "options": {}}]}},
                "targets": [target('min(queueworker_broker_up{job=~"$job", instance=~"$instance"})')],
            },
        ],
    }


def panel(board: Board, panel_id: int) -> dict[str, Any]:
    for top in board["panels"]:
        for candidate in [top, *top.get("panels", [])]:
            if candidate["id"] == panel_id:
                result: dict[str, Any] = candidate
                return result
    raise KeyError(panel_id)


def var(board: Board, name: str) -> dict[str, Any]:
    result: dict[str, Any] = next(v for v in templates(board) if v["name"] == name)
    return result


def set_expr(panel_id: int, expr: str, index: int = 0) -> Callable[[Board], None]:
    def change(board: Board) -> None:
        panel(board, panel_id)["targets"][index]["expr"] = expr

    return change


SEL = 'job=~"$job", instance=~"$instance"'
#: (rule, fault) pairs: each fault, made in the good fixture, is one the rule must report.
FAULTS: list[tuple[str, str, Callable[[Board], None]]] = [
    ("template-datasource-rule", "no datasource variable", lambda b: templates(b).pop(0)),
    ("template-datasource-rule", "misnamed", lambda b: var(b, "datasource").update(name="prom")),
    ("template-datasource-rule", "mislabelled", lambda b: var(b, "datasource").update(label="Prom")),
    ("template-job-rule", "no job variable", lambda b: templates(b).remove(var(b, "job"))),
    ("template-job-rule", "single select", lambda b: var(b, "job").update(multi=False)),
    ("template-job-rule", "All is .*", lambda b: var(b, "job").update(allValue=".*")),
    ("template-job-rule", "fixed data source", lambda b: var(b, "job").update(datasource={"uid": "prom-1"})),
    ("template-instance-rule", "no instance variable", lambda b: templates(b).remove(var(b, "instance"))),
    ("template-instance-rule", "custom values", lambda b: var(b, "instance").update(type="custom")),
    ("template-label-promql-rule", "not a function", lambda b: var(b, "queue").update(query="up")),
    (
        "template-label-promql-rule",
        "bad selector",
        lambda b: var(b, "queue")["query"].update(query="label_values(up{, q)"),
    ),
    ("template-on-time-change-reload-rule", "on load", lambda b: var(b, "queue").update(refresh=1)),
    ("uneditable-dashboard", "editable", lambda b: b.update(editable=True)),
    (
        "panel-datasource-rule",
        "fixed on the panel",
        lambda b: panel(b, 3).update(datasource={"uid": "prom-1"}),
    ),
    (
        "panel-datasource-rule",
        "fixed on a target",
        lambda b: panel(b, 1)["targets"][0].update(datasource="prom"),
    ),
    ("panel-title-description-rule", "no description", lambda b: panel(b, 3).pop("description")),
    ("panel-title-description-rule", "no title", lambda b: panel(b, 1).update(title="")),
    ("panel-units-rule", "no unit", lambda b: panel(b, 1)["fieldConfig"]["defaults"].pop("unit")),
    ("panel-units-rule", "not a unit", lambda b: panel(b, 1)["fieldConfig"]["defaults"].update(unit="tasks")),
    (
        "panel-units-rule",
        "override not a unit",
        lambda b: panel(b, 3)["fieldConfig"]["overrides"][0]["properties"][0].update(value="x"),
    ),
    ("panel-no-targets-rule", "no targets", lambda b: panel(b, 3).pop("targets")),
    ("target-promql-rule", "unbalanced", set_expr(1, f"sum(up{{{SEL}}}")),
    ("target-promql-rule", "wrong type", set_expr(1, f"sum(up{{{SEL}}}[5m])")),
    ("target-rate-interval-rule", "rate over 5m", set_expr(3, f"sum(rate(ok_total{{{SEL}}}[5m]))")),
    ("target-rate-interval-rule", "irate over 1m", set_expr(3, f"irate(ok_total{{{SEL}}}[1m])")),
    ("target-rate-interval-rule", "$__interval", set_expr(3, f"rate(ok_total{{{SEL}}}[$__interval])")),
    ("target-job-rule", "hard-coded job", set_expr(1, 'sum(up{job="exporter", instance=~"$instance"})')),
    ("target-job-rule", "no job matcher", set_expr(4, 'min(up{instance=~"$instance"})')),
    (
        "target-job-rule",
        "one selector of two",
        set_expr(1, f'sum(up{{{SEL}}}) / sum(up{{instance=~"$instance"}})'),
    ),
    (
        "target-instance-rule",
        "hard-coded instance",
        set_expr(4, 'min(up{job=~"$job", instance="10.0.0.7:9808"})'),
    ),
    ("target-instance-rule", "in a range", set_expr(3, 'sum(rate(ok_total{job=~"$job"}[$__rate_interval]))')),
    ("target-counter-agg-rule", "counter summed raw", set_expr(3, f"sum(ok_total{{{SEL}}})")),
    (
        "target-counter-agg-rule",
        "counter in delta",
        set_expr(3, f"delta(ok_total{{{SEL}}}[$__rate_interval])"),
    ),
]


def test_the_fixture_passes_every_rule() -> None:
    assert lint(good_board()) == []


@pytest.mark.parametrize(("rule", "fault", "change"), FAULTS, ids=[f"{r}: {f}" for r, f, _ in FAULTS])
def test_each_rule_reports_its_fault(rule: str, fault: str, change: Callable[[Board], None]) -> None:
    board = good_board()
    change(board)
    assert rule in {finding.rule for finding in lint(board)}, f"{rule} misses: {fault}"


def test_every_rule_has_a_fault_it_is_shown_to_catch() -> None:
    assert {rule for rule, _, _ in FAULTS} == set(RULES)


def test_a_query_rule_lints_only_a_prometheus_dashboard() -> None:
    board = good_board()
    templates(board).remove(var(board, "job"))
    set_expr(3, "sum(rate(celery_task_succeeded_total[5m]))")(board)
    prometheus_rules = {"target-rate-interval-rule", "target-job-rule", "template-job-rule"}
    assert {finding.rule for finding in lint(board)} >= prometheus_rules
    var(board, "datasource")["query"] = "loki"
    assert not {finding.rule for finding in lint(board)} & prometheus_rules


def test_variables_outside_strings_take_sample_values() -> None:
    variables = templates(good_board())
    assert expand('rate(x{job=~"$job"}[$__rate_interval])', variables) == 'rate(x{job=~"$job"}[3617117ms])'
    assert expand("x[${__range}] offset [[__interval]]", variables) == "x[1923947ms] offset 2719231ms"
    assert expand("topk($queue, x)", variables) == "topk(__all, x)"
    assert expand("${queue:pipe}", [{"name": "queue", "current": {}}]) == "queue|queue|queue"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_passes_every_rule_with_no_exclusions(path: Path) -> None:
    findings = lint(json.loads(path.read_text()))
    assert not findings, f"{path.name}:\n" + "\n".join(map(str, findings))


def test_every_query_parses_in_prometheus_own_parser(tmp_path: Path) -> None:
    """The queries parse in Prometheus's parser too (promtool, which .ci/run installs), not only in the
    parser the rules use."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not on PATH: install Debian's `prometheus` package (as .ci/run does)"
    exprs = []
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        exprs += [expand(t["expr"], templates(board)) for p in panels(board) for t in p.get("targets") or []]
    rules = [{"record": f"dashboard_query_{i}", "expr": expr} for i, expr in enumerate(exprs)]
    assert len(rules) > 30
    file = tmp_path / "queries.yaml"
    file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    done = subprocess.run(
        [promtool, "check", "rules", str(file)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_broken_query_fails_prometheus_own_parser(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not on PATH: install Debian's `prometheus` package (as .ci/run does)"
    file = tmp_path / "queries.yaml"
    file.write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": [{"record": "r", "expr": "sum(x"}]}]}))
    done = subprocess.run(
        [promtool, "check", "rules", str(file)], capture_output=True, text=True, check=False
    )
    assert done.returncode != 0
