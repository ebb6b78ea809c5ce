"""The field table (workers/queueworker/api/fields.py) drives the spec model: every single-field case
derived from it (tests/support/fieldcases.py) gets the verdict its bounds say, naming the field; the
typed model's defaults are the table's; each rule across fields carries its CEL and its Python check;
the table's schema is the committed CRD's."""

from __future__ import annotations

from typing import Any

import pytest
from queueworker.api import rules
from queueworker.api.fields import QUEUEWORKER, SPEC
from queueworker.api.schema import Field, Rule
from queueworker.api.spec import Autoscaling, QueueWorkerSpec, Shutdown

from hack import crdgen
from tests.support.fieldcases import PATTERN_PROBES, FieldCase, field_cases, model_paths

CASES = field_cases()


def related(a: str, b: str) -> bool:
    return a == b or a.startswith((b + ".", b + "[")) or b.startswith((a + ".", a + "["))


def test_the_table_derives_cases_for_every_kind_of_limit() -> None:
    whys = {c.why for c in CASES}
    assert {"missing", "unknown-field", "below-minimum", "above-maximum", "pattern", "too-long"} <= whys
    assert {"not-in-enum", "too-many", "duplicate", "exclusive-minimum", "fraction"} <= whys
    # Every pattern's probes are in use: a pattern renamed in the table must not drop them silently.
    probed = {c.pattern for c in CASES if c.pattern is not None}
    assert probed == set(PATTERN_PROBES), set(PATTERN_PROBES) - probed
    assert len(CASES) >= 120
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_model_verdict_follows_the_table(case: FieldCase) -> None:
    paths = model_paths(case.manifest())
    if case.valid:
        assert not any(related(p, case.path) for p in paths), paths
        assert paths == []
    else:
        assert any(related(p, case.path) for p in paths), (case.path, paths)


def test_model_defaults_are_the_tables() -> None:
    spec = QueueWorkerSpec(app="a", queues=("q",))
    assert spec.concurrency == SPEC.child("concurrency").default
    assert spec.pool == SPEC.child("pool").default
    auto = SPEC.child("autoscaling")
    assert Autoscaling() == Autoscaling(**{
        "mode": auto.default["mode"],
        "min_replicas": auto.default["minReplicas"],
        "max_replicas": auto.default["maxReplicas"],
        "target_wait_seconds": auto.default["targetWaitSeconds"],
        "scale_down_delay_seconds": auto.default["scaleDownDelaySeconds"],
    })  # fmt: skip
    assert Shutdown().grace_period_seconds == SPEC.child("shutdown").default["gracePeriodSeconds"]


def _rules(node: Field) -> list[Rule]:
    out = list(node.rules)
    for sub in (*node.fields, node.items, node.values):
        if sub is not None:
            out += _rules(sub)
    return out


def test_every_rule_is_in_the_crd_with_its_python_check() -> None:
    table = _rules(QUEUEWORKER)
    named = [v for v in vars(rules).values() if isinstance(v, Rule)]
    assert sorted(r.message for r in table) == sorted(r.message for r in named)  # each attached once
    assert all(callable(r.check) and r.cel and r.message.startswith("spec.") for r in table)
    schema = crdgen.version_schema()
    cel = [v["rule"] for v in _crd_validations(schema)]
    assert sorted(cel) == sorted(r.cel for r in table)


def _crd_validations(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, dict):
        out = list(node.get("x-kubernetes-validations", []))
        for value in node.values():
            out += _crd_validations(value)
        return out
    if isinstance(node, list):
        return [v for item in node for v in _crd_validations(item)]
    return []


def test_table_schema_is_the_committed_crds() -> None:
    for path in crdgen.CRD_PATHS:
        assert crdgen.version_schema(crdgen.load_crd(path)) == QUEUEWORKER.schema()


def test_at_finds_nested_fields() -> None:
    assert SPEC.at("autoscaling.minReplicas").minimum == 0
    assert SPEC.at("schedules[].name").max_length == 63
    with pytest.raises(KeyError):
        SPEC.at("autoscaling.nope")
