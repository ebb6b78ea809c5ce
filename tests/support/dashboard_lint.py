"""The rules of Grafana's dashboard-linter, the linter kubernetes-mixin runs on its dashboards with
`--strict` (a warning fails like an error), written for the chart's dashboards.

Every rule of the linter's default set that concerns Prometheus dashboards is here, under the linter's
own rule name, with its semantics: what a rule skips, it skips here too (a query is linted only when the
dashboard's first data-source variable is a Prometheus one; the PromQL rules lint only the panel types
that the linter knows carry queries). Queries are parsed after Grafana's variables are replaced by sample
values, as the linter does: outside double-quoted strings only, so `job=~"$job"` keeps its `$job`.
Where this module is stricter than the linter, its docstring says so. There is no exclusion mechanism.
The LogQL rules are left out: no dashboard of the chart has a Loki target.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import promql_parser

Board = dict[str, Any]
Panel = dict[str, Any]

PROMETHEUS = "prometheus"
#: Panel types the panel rules lint, and those whose targets the PromQL rules parse.
PANEL_TYPES = {"stat", "singlestat", "gauge", "graph", "table", "timeseries"}
QUERY_PANEL_TYPES = {"singlestat", "gauge", "table", "stat", "state-timeline", "timeseries"}

#: Sample values of Grafana's global variables. Each duration is distinct, so that a range parsed from
#: `$__rate_interval` is recognised by its length.
RATE_INTERVAL = datetime.timedelta(milliseconds=3_617_117)
GLOBALS: dict[str, str] = {
    "__rate_interval": "3617117ms",
    "__interval": "2719231ms",
    "__interval_ms": "2719231",
    "__range": "1923947ms",
    "__range_ms": "1923947",
    "__range_s": "1923",
    "__auto": "12345ms",
    "__dashboard": "dashboard",
    "__name": "name",
    "__org": "7",
    "__org.name": "org",
    "__user.id": "7",
    "__user.login": "user",
    "__user.email": "user@example.com",
    "timeFilter": "time > now() - 7d",
    "__timeFilter": "time > now() - 7d",
}
#: `$__from` and `$__to` as Grafana formats them (milliseconds unless a format says otherwise).
SAMPLE_TIME = datetime.datetime(2024, 7, 13, 20, 19, 9, 254000, tzinfo=datetime.UTC)

#: Grafana's unit ids (its value-format categories) a panel may name; an id outside this list fails.
#: The linter knows every id Grafana ships; this list holds those a queue dashboard can mean, so a
#: new kind of unit is added here on purpose.
UNITS = frozenset(
    {
        "none",
        "string",
        "short",
        "percent",
        "percentunit",
        "sci",
        "locale",
        "hex",
        "hex0x",
        "ns",
        "µs",
        "ms",
        "s",
        "m",
        "h",
        "d",
        "dtdurationms",
        "dtdurations",
        "dthms",
        "dtdhms",
        "clockms",
        "clocks",
        "timeticks",
        "hertz",
        "dateTimeAsIso",
        "dateTimeAsIsoNoDateIfToday",
        "dateTimeAsUS",
        "dateTimeAsUSNoDateIfToday",
        "dateTimeAsLocal",
        "dateTimeAsLocalNoDateIfToday",
        "dateTimeAsSystem",
        "dateTimeFromNow",
        "bytes",
        "decbytes",
        "bits",
        "decbits",
        "kbytes",
        "deckbytes",
        "mbytes",
        "decmbytes",
        "gbytes",
        "decgbytes",
        "pps",
        "binBps",
        "Bps",
        "binbps",
        "bps",
        "KiBs",
        "KBs",
        "MiBs",
        "MBs",
        "GiBs",
        "GBs",
        "cps",
        "ops",
        "reqps",
        "rps",
        "wps",
        "iops",
        "cpm",
        "opm",
        "rpm",
        "wpm",
        "mps",
        "mpm",
        "bool",
        "bool_yes_no",
        "bool_on_off",
    }
)


@dataclass(frozen=True)
class Finding:
    rule: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"[{self.rule}] {self.where}: {self.message}"


# -- the dashboard as the rules see it ---------------------------------------------------------------


def panels(board: Board) -> list[Panel]:
    """Every panel: those of the old `rows`, top-level ones, and those inside collapsed rows."""

    def nested(panel: Panel) -> Iterator[Panel]:
        yield panel
        for child in panel.get("panels") or []:
            yield from nested(child)

    found: list[Panel] = []
    for row in board.get("rows") or []:
        for panel in row.get("panels") or []:
            found.extend(nested(panel))
    for panel in board.get("panels") or []:
        found.extend(nested(panel))
    return found


def templates(board: Board) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = board.get("templating", {}).get("list") or []
    return found


def template_query(template: dict[str, Any]) -> str:
    query = template.get("query", "")
    if isinstance(query, dict):
        return str(query.get("query", ""))
    return str(query)


def datasource_uid(value: Any) -> str:
    """A panel's, target's or variable's data source: a uid string, or an object with a `uid`."""
    if isinstance(value, dict):
        return str(value.get("uid", ""))
    return "" if value is None else str(value)


def prometheus_board(board: Board) -> bool:
    """The linter lints queries only where the first data-source variable is a Prometheus one."""
    first = next((t for t in templates(board) if t.get("type") == "datasource"), None)
    return first is not None and template_query(first) == PROMETHEUS


def where(panel: Panel, target: dict[str, Any] | None = None) -> str:
    text = f"panel {panel.get('id')} '{panel.get('title', '')}'"
    return text if target is None else f"{text} target {target.get('refId', '?')}"


# -- Grafana's variables, replaced by sample values ----------------------------------------------------

_VARIABLE = re.compile(r"\$([0-9A-Za-z_]+)|\$\{([^}]+)\}|\[\[([^\[\]]+)\]\]")


def _format(name: str, value: str, fmt: str) -> str:
    """A sample value in a Grafana format; a multi-value variable stands for three values."""
    three = [value] * 3
    joiners: dict[str, Callable[[list[str]], str]] = {
        "csv": ",".join,
        "raw": ",".join,
        "pipe": "|".join,
        "regex": "|".join,
        "text": " + ".join,
        "doublequote": lambda v: '"' + '","'.join(v) + '"',
        "singlequote": lambda v: "'" + "','".join(v) + "'",
        "sqlstring": lambda v: "'" + "','".join(v) + "'",
        "glob": lambda v: "{" + ",".join(v) + "}",
        "json": json.dumps,
        "lucene": lambda v: '("' + '" OR "'.join(v) + '")',
        "percentencode": lambda v: ",".join(v).replace(",", "%2C"),
        "queryparam": lambda v: "&".join(f"var-{name}={x}" for x in v),
    }
    return joiners[fmt](three) if fmt in joiners else value


def _sample(spec: str, variables: list[dict[str, Any]]) -> str:
    parts = spec.split(":")
    if len(parts) > 3:
        raise ValueError(f"unknown variable format: {spec}")
    name, kind, fmt = parts[0], parts[1] if len(parts) == 3 else "", parts[-1] if len(parts) > 1 else ""
    if name in ("__from", "__to"):
        if kind == "date" or fmt in ("date", "iso"):
            return SAMPLE_TIME.isoformat() if fmt in ("date", "iso") else str(int(SAMPLE_TIME.timestamp()))
        return str(int(SAMPLE_TIME.timestamp() * 1000))
    if name in GLOBALS:
        return _format(name, GLOBALS[name], fmt)
    if name.startswith("__auto_interval"):
        return "10s"
    for variable in variables:
        if variable.get("name") != name:
            continue
        others = [v for v in variables if v.get("name") != name]
        current = _first((variable.get("current") or {}).get("value"))
        if current:
            return expand(current, others)
        options = variable.get("options") or []
        if options:
            return expand(_first(options[0].get("value")), others)
    return _format(name, name, fmt)


def _first(value: Any) -> str:
    if isinstance(value, list):
        return str(value[0]) if value else ""
    return "" if value is None else str(value)


def expand(expr: str, variables: list[dict[str, Any]]) -> str:
    """Replace variables outside double-quoted strings by sample values, as the linter does."""
    parts = expr.split('"')
    for i in range(0, len(parts), 2):
        parts[i] = _VARIABLE.sub(
            lambda m: _sample(next(g for g in m.groups() if g is not None), variables), parts[i]
        )
    return '"'.join(parts)


def parse(expr: str, variables: list[dict[str, Any]]) -> promql_parser.Expr:
    """The parsed query; ValueError if it is not valid PromQL."""
    return promql_parser.parse(expand(expr, variables))


# -- walking a query ------------------------------------------------------------------------------------


def _children(node: Any) -> list[Any]:
    if isinstance(node, promql_parser.AggregateExpr):
        return [c for c in (node.param, node.expr) if c is not None]
    if isinstance(node, promql_parser.BinaryExpr):
        return [node.lhs, node.rhs]
    if isinstance(node, promql_parser.Call):
        return list(node.args)
    if isinstance(node, promql_parser.MatrixSelector):
        return [node.vector_selector]
    if isinstance(node, promql_parser.ParenExpr | promql_parser.SubqueryExpr | promql_parser.UnaryExpr):
        return [node.expr]
    return []


def walk(node: Any, parents: tuple[Any, ...] = ()) -> Iterator[tuple[Any, tuple[Any, ...]]]:
    """Every node of a query, depth first, with its ancestors (nearest last)."""
    yield node, parents
    for child in _children(node):
        yield from walk(child, (*parents, node))


def selectors(expr: promql_parser.Expr) -> list[promql_parser.VectorSelector]:
    return [n for n, _ in walk(expr) if isinstance(n, promql_parser.VectorSelector)]


def prometheus_targets(board: Board, only_query_panels: bool) -> Iterator[tuple[Panel, dict[str, Any]]]:
    if not prometheus_board(board):
        return
    for panel in panels(board):
        if only_query_panels and panel.get("type") not in QUERY_PANEL_TYPES:
            continue
        for target in panel.get("targets") or []:
            yield panel, target


def parsed_targets(
    board: Board, only_query_panels: bool
) -> Iterator[tuple[Panel, dict[str, Any], promql_parser.Expr]]:
    """Targets whose query parses; one that does not is target-promql-rule's to report."""
    for panel, target in prometheus_targets(board, only_query_panels):
        try:
            yield panel, target, parse(target.get("expr", ""), templates(board))
        except ValueError:
            continue
