"""The spec model and the CRD as the real API server evaluates it (structural schema, patterns, CEL rules)
give the same verdict on generated input: the whole cron grammar and its "never fires" boundary, the
interval grammar, and near-valid specs (each a server-side dry run, milliseconds apiece). Every CEL rule
of the CRD is broken by some invalid case of the corpus."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from queueworker.api.checks import duration_seconds
from queueworker.api.spec import SpecError, parse_manifest
from queueworker.cron import CRON, cron_never_fires, never_fires_patterns

from hack.crdgen import version_schema
from tests.apiserver.conftest import Server
from tests.fast.unit.test_cron import boundary
from tests.fast.unit.test_spec_fuzz import near_valid
from tests.support.cases import load_cases
from tests.support.verdicts import NOT_CHECKED, dotted, dry_run, related

NAMESPACE = "qw-grammar"
SCHEMA = version_schema()
EVERY = SCHEMA["properties"]["spec"]["properties"]["schedules"]["items"]["properties"]["every"]


def generated(examples: int) -> settings:
    return settings(
        max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )


@pytest.fixture(scope="module")
def server(crd_server: Server) -> Iterator[Server]:
    crd_server.kubectl("create", "namespace", NAMESPACE)
    yield crd_server


def manifest(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "queueworker.dev/v1alpha1",
        "kind": "QueueWorker",
        "metadata": {"name": "emails"},
        "spec": {"app": "shop.tasks", "queues": ["emails"], **spec},
    }


def model_paths(obj: Any) -> list[str]:
    try:
        parse_manifest(obj)
    except SpecError as exc:
        return [e.path for e in exc.errors]
    return []


def verdicts(server: Server, schedule: dict[str, str]) -> tuple[bool, bool]:
    """(model accepts, API server accepts) a QueueWorker with one schedule."""
    obj = manifest(schedules=[{"name": "s", "task": "t.a", **schedule}])
    stored, _, _ = dry_run(server.api, NAMESPACE, obj)
    return not model_paths(obj), stored is not None


@generated(300)
@given(expr=st.from_regex(CRON, fullmatch=True))
def test_model_and_crd_agree_on_the_whole_cron_grammar(server: Server, expr: str) -> None:
    model, crd = verdicts(server, {"cron": expr})
    assert model == crd == (len(expr) <= 128 and not cron_never_fires(expr)), expr  # maxLength 128


@generated(400)
@given(expr=boundary)
def test_never_fires_verdicts_agree_near_the_boundary(server: Server, expr: str) -> None:
    never = cron_never_fires(expr)
    assert any(re.match(p, expr) for p in never_fires_patterns()) is never, expr
    assert verdicts(server, {"cron": expr}) == (not never, not never), expr


@pytest.mark.parametrize(
    ("expr", "never"),
    [
        ("0 0 30 2 *", True),
        ("0 0 30-31 2 *", True),  # a range: the CRD's earlier rule let this one through
        ("0 0 31/5 feb,Apr *", True),
        ("0 0 31 4/5 *", True),  # April and September
        ("0 0 31 4/4 *", False),  # April, August, December
        ("0 0 30 2,3 *", False),
        ("0 0 29 2 *", False),  # leap years
        ("0 0 30 2-2 *", False),  # croniter reads N-N as a range that wraps all the way round
        ("0 0 30-1 2 *", False),  # wraps to the 1st
    ],
)
def test_never_fires_examples(server: Server, expr: str, never: bool) -> None:
    assert verdicts(server, {"cron": expr}) == (not never, not never)


@generated(120)
@given(text=st.from_regex(EVERY["pattern"], fullmatch=True))
def test_model_and_crd_agree_on_intervals(server: Server, text: str) -> None:
    seconds = duration_seconds(text)
    assert seconds is not None
    assert verdicts(server, {"every": text}) == (seconds > 0, seconds > 0), text


@generated(250)
@given(extra=near_valid)
def test_model_and_crd_agree_on_generated_specs(server: Server, extra: dict[str, Any]) -> None:
    obj = manifest(**extra)
    model = model_paths(obj)
    stored, crd, message = dry_run(server.api, NAMESPACE, obj)
    assert bool(model) == (stored is None), (model, message)
    unnamed = [m for m in map(dotted, model) if not any(related(m, p) or same_list(m, p) for p in crd)]
    # The server stops at its first failing stage (strict decoding, then the schema, then CEL rules).
    stopped_early = NOT_CHECKED in message or "strict decoding error" in message
    assert not unnamed or stopped_early, (unnamed, crd, message)


def same_list(a: str, b: str) -> bool:
    """Items of one list: of duplicates, the server names the first repeat, the model another."""
    item = re.compile(r"\[\d+\]$")
    return bool(item.search(a)) and item.sub("", a) == item.sub("", b)


def _rules(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield from node.get("x-kubernetes-validations", [])
        for value in node.values():
            yield from _rules(value)
    elif isinstance(node, list):
        for value in node:
            yield from _rules(value)


def test_every_cel_rule_is_exercised_by_an_invalid_case(server: Server) -> None:
    messages = " ".join(dry_run(server.api, NAMESPACE, c.obj)[2] for c in load_cases() if not c.valid)
    rules = list(_rules(SCHEMA))
    assert rules
    missing = [r["rule"] for r in rules if r["message"] not in messages]
    assert missing == [], f"no invalid case breaks these rules: {missing}"
