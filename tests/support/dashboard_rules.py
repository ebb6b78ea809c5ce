"""dashboard-linter's default rules, by their names (see dashboard_lint for the dashboard as they read it).
`lint(board)` runs every rule as `dashboard-linter lint --strict` does: a warning is a finding too."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import promql_parser

from tests.support.dashboard_lint import (
    PANEL_TYPES,
    PROMETHEUS,
    RATE_INTERVAL,
    UNITS,
    Board,
    Finding,
    datasource_uid,
    panels,
    parse,
    parsed_targets,
    prometheus_board,
    prometheus_targets,
    selectors,
    template_query,
    templates,
    walk,
    where,
)

Rule = Callable[[Board], list[Finding]]
RULES: dict[str, Rule] = {}


def rule(name: str) -> Callable[[Rule], Rule]:
    def register(fn: Rule) -> Rule:
        RULES[name] = fn
        return fn

    return register


def lint(board: Board) -> list[Finding]:
    return [finding for check in RULES.values() for finding in check(board)]


# -- dashboard and template rules -----------------------------------------------------------------------


@rule("template-datasource-rule")
def template_datasource(board: Board) -> list[Finding]:
    """A data-source variable, named `datasource` (or `<type>_datasource`) and labelled `Data source`."""
    name = "template-datasource-rule"
    sources = [t for t in templates(board) if str(t.get("type", "")).lower() == "datasource"]
    if not sources:
        return [Finding(name, "dashboard", "does not have a templated data source")]
    found = []
    for source in sources:
        kind = template_query(source)
        names, labels = {f"{kind.lower()}_datasource"}, {f"{kind.title()} data source"}
        if len(sources) == 1:
            names.add("datasource")
            labels.add("Data source")
        if source.get("name") not in names:
            found.append(Finding(name, "dashboard", f"data source variable named {source.get('name')!r}"))
        if source.get("label") not in labels:
            found.append(Finding(name, "dashboard", f"data source variable labelled {source.get('label')!r}"))
    return found


def _selection_variable(board: Board, name: str) -> list[Finding]:
    """A Prometheus dashboard lets the reader pick the `job` and `instance` (both a multi-select query
    variable on the templated data source, labelled by its name, whose All is `.+`)."""
    rule_name = f"template-{name}-rule"
    first = next((t for t in templates(board) if t.get("type") == "datasource"), None)
    if first is None or template_query(first) != PROMETHEUS:
        return []
    variable = next((t for t in templates(board) if t.get("name") == name), None)
    if variable is None:
        return [Finding(rule_name, "dashboard", f"is missing the {name} template")]
    problems = []
    uid = datasource_uid(variable.get("datasource"))
    if uid not in ("$datasource", "${datasource}", "$prometheus_datasource", "${prometheus_datasource}"):
        problems.append(f"should use datasource '$datasource', uses {uid!r}")
    if variable.get("type") != "query":
        problems.append(f"should be a Prometheus query, is {variable.get('type')!r}")
    if variable.get("label") != name.title():
        problems.append(f"should be labelled {name.title()!r}, is {variable.get('label')!r}")
    if not variable.get("multi"):
        problems.append("should be a multi select")
    if variable.get("allValue") != ".+":
        problems.append(f"allValue should be '.+', is {variable.get('allValue')!r}")
    return [Finding(rule_name, "dashboard", f"{name} template {p}") for p in problems]


@rule("template-job-rule")
def template_job(board: Board) -> list[Finding]:
    return _selection_variable(board, "job")


@rule("template-instance-rule")
def template_instance(board: Board) -> list[Finding]:
    return _selection_variable(board, "instance")


_LABEL_QUERY = re.compile(r"([a-z_]+)\((.+)\)")


@rule("template-label-promql-rule")
def template_label_promql(board: Board) -> list[Finding]:
    """A query variable calls one of Grafana's Prometheus functions on a selector that parses.
    (The linter accepts a selector its parser partly reads; here the selector before a `label_values`
    label must parse whole.)"""
    if not prometheus_board(board):
        return []
    found = []
    for variable in templates(board):
        if variable.get("type") != "query":
            continue
        query = template_query(variable)
        match = _LABEL_QUERY.search(query)
        problem = None
        if match is None:
            problem = "is not a function call"
        elif match[1] not in ("label_names", "label_values", "metrics", "query_result"):
            problem = f"calls {match[1]!r}"
        else:
            argument = match[2].rsplit(",", 1)[0] if match[1] == "label_values" else match[2]
            try:
                if match[1] != "metrics" and argument.strip():
                    parse(argument, templates(board))
            except ValueError as error:
                problem = f"has an invalid selector: {error}"
        if problem:
            found.append(Finding("template-label-promql-rule", "dashboard", f"{variable['name']}: {problem}"))
    return found


@rule("template-on-time-change-reload-rule")
def template_reload(board: Board) -> list[Finding]:
    return [
        Finding(
            "template-on-time-change-reload-rule",
            "dashboard",
            f"variable {t.get('name')!r} refreshes {t.get('refresh')!r}, not on time range change (2)",
        )
        for t in templates(board)
        if t.get("type") == "query" and t.get("refresh") != 2
    ]


@rule("uneditable-dashboard")
def uneditable(board: Board) -> list[Finding]:
    if board.get("editable"):
        return [Finding("uneditable-dashboard", "dashboard", "is editable; set 'editable: false'")]
    return []


# -- panel rules --------------------------------------------------------------------------------------------


@rule("panel-datasource-rule")
def panel_datasource(board: Board) -> list[Finding]:
    """Panels use a data-source variable. The linter checks the panel; this also checks each target,
    and stat and gauge panels as well."""
    allowed = set()
    for source in templates(board):
        if str(source.get("type", "")).lower() == "datasource":
            allowed |= {f"${source.get('name')}", f"${{{source.get('name')}}}"}
    found = []
    for panel in panels(board):
        if panel.get("type") not in PANEL_TYPES:
            continue
        for owner in [panel, *(panel.get("targets") or [])]:
            uid = datasource_uid(owner.get("datasource"))
            if uid not in allowed:
                target = None if owner is panel else owner
                message = f"does not use a templated data source, uses {uid!r}"
                found.append(Finding("panel-datasource-rule", where(panel, target), message))
    return found


@rule("panel-title-description-rule")
def panel_title_description(board: Board) -> list[Finding]:
    return [
        Finding("panel-title-description-rule", where(p), "has no title or no description")
        for p in panels(board)
        if p.get("type") in PANEL_TYPES and not (p.get("title") and p.get("description"))
    ]


def _unit(panel: dict[str, Any]) -> str:
    """The unit an override sets (the last one wins), else the default unit."""
    config = panel.get("fieldConfig") or {}
    unit = ""
    for override in config.get("overrides") or []:
        for prop in override.get("properties") or []:
            if prop.get("id") == "unit":
                unit = str(prop.get("value") or "")
    return unit or str((config.get("defaults") or {}).get("unit") or "")


def _has_mappings(panel: dict[str, Any]) -> bool:
    config = panel.get("fieldConfig") or {}
    for override in config.get("overrides") or []:
        for prop in override.get("properties") or []:
            if prop.get("id") == "mappings" and prop.get("value") is not None:
                return True
    return (config.get("defaults") or {}).get("mappings") is not None


@rule("panel-units-rule")
def panel_units(board: Board) -> list[Finding]:
    """Every panel names a Grafana unit, unless value mappings say what a value means, or a stat panel
    shows non-numeric fields."""
    found = []
    for panel in panels(board):
        if panel.get("type") not in PANEL_TYPES or _has_mappings(panel):
            continue
        if panel.get("type") == "stat" and ((panel.get("options") or {}).get("reduceOptions") or {}).get(
            "fields"
        ):
            continue
        unit = _unit(panel)
        if unit not in UNITS:
            found.append(Finding("panel-units-rule", where(panel), f"has no or invalid units: {unit!r}"))
    return found


@rule("panel-no-targets-rule")
def panel_no_targets(board: Board) -> list[Finding]:
    return [
        Finding("panel-no-targets-rule", where(p), "has no targets")
        for p in panels(board)
        if p.get("type") in PANEL_TYPES and p.get("targets") is None
    ]


# -- target (PromQL) rules ---------------------------------------------------------------------------------


@rule("target-promql-rule")
def target_promql(board: Board) -> list[Finding]:
    found = []
    ids = {p.get("id") for p in panels(board)}
    for panel, target in prometheus_targets(board, only_query_panels=True):
        expr = target.get("expr", "")
        if not expr and target.get("panelId", 0) > 0 and target["panelId"] not in ids:
            found.append(Finding("target-promql-rule", where(panel, target), "invalid panel reference"))
        try:
            parse(expr, templates(board))
        except ValueError as error:
            message = f"invalid PromQL query {expr!r}: {error}"
            found.append(Finding("target-promql-rule", where(panel, target), message))
    return found


@rule("target-rate-interval-rule")
def target_rate_interval(board: Board) -> list[Finding]:
    """Every range of rate() and irate() is `$__rate_interval`; so is a range outside a function."""
    found = []
    for panel, target, expr in parsed_targets(board, only_query_panels=True):
        for node, parents in walk(expr):
            if (
                not isinstance(node, promql_parser.MatrixSelector)
                or node.range == RATE_INTERVAL
                or not parents
            ):
                continue
            parent = parents[-1]
            if not isinstance(parent, promql_parser.Call):
                problem = "uses a range outside a function call: use $__rate_interval"
            elif parent.func.name in ("rate", "irate"):
                problem = f"{parent.func.name}() should use $__rate_interval"
            else:
                continue
            found.append(Finding("target-rate-interval-rule", where(panel, target), problem))
            break
    return found


_OPS = {"Equal": "=", "NotEqual": "!=", "Re": "=~", "NotRe": "!~"}


def _required_matcher(board: Board, label: str) -> list[Finding]:
    """Every selector of every query has `label=~"$label"`: the variable decides, nothing is hard-coded."""
    found = []
    for panel, target, expr in parsed_targets(board, only_query_panels=False):
        for selector in selectors(expr):
            mine = [m for m in selector.matchers.matchers if m.name == label]
            if any(m.op == promql_parser.MatchOp.Re and m.value == f"${label}" for m in mine):
                continue
            have = (
                ", ".join(f"{m.name}{_OPS[str(m.op).rsplit('.', 1)[-1]]}{m.value!r}" for m in mine)
                or "no matcher"
            )
            message = f'{selector} needs {label}=~"${label}", has {have}'
            found.append(Finding(f"target-{label}-rule", where(panel, target), message))
    return found


@rule("target-job-rule")
def target_job(board: Board) -> list[Finding]:
    return _required_matcher(board, "job")


@rule("target-instance-rule")
def target_instance(board: Board) -> list[Finding]:
    return _required_matcher(board, "instance")


@rule("target-counter-agg-rule")
def target_counter_agg(board: Board) -> list[Finding]:
    """A counter (`*_total`) is only read through rate(), irate() or increase() over a range. (The linter
    tells a counter by the text of its selector, so it misses one with matchers; this goes by the name.)"""
    found = []
    for panel in panels(board):
        for target in panel.get("targets") or []:
            try:
                expr = parse(target.get("expr", ""), templates(board))
            except ValueError:
                continue
            for node, parents in walk(expr):
                if not isinstance(node, promql_parser.VectorSelector) or not (node.name or "").endswith(
                    "_total"
                ):
                    continue
                ranged = len(parents) >= 2 and isinstance(parents[-1], promql_parser.MatrixSelector)
                call = parents[-2] if ranged else None
                if not (
                    isinstance(call, promql_parser.Call) and call.func.name in ("rate", "irate", "increase")
                ):
                    message = f"counter {node.name} is not read through rate, irate or increase"
                    found.append(Finding("target-counter-agg-rule", where(panel, target), message))
    return found
