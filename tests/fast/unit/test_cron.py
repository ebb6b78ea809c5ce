"""The cron grammar: "never fires" examples; the CRD's rule is the one queueworker.cron generates; the
conversion for beat spells every field as numbers. The whole grammar and the "never fires" boundary,
generated, go through the model and the API server in tests/apiserver/test_grammar.py (the strategies
are here)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import strategies as st
from queueworker.api.spec import SpecError, parse_manifest
from queueworker.cron import (
    celery_crontab,
    cron_never_fires,
    crontab_kwargs,
    never_fires_rule,
)

from hack.crdgen import version_schema

SCHEDULE = version_schema()["properties"]["spec"]["properties"]["schedules"]["items"]
MONTH_NAMES = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]


def manifest(cron: str) -> dict[str, Any]:
    return {
        "apiVersion": "queueworker.dev/v1alpha1",
        "kind": "QueueWorker",
        "metadata": {"name": "emails"},
        "spec": {"app": "shop.tasks", "queues": ["emails"],
                 "schedules": [{"name": "s", "task": "t.a", "cron": cron}]},
    }  # fmt: skip


def accepted(cron: str) -> bool:
    """The spec model's verdict (the API server's is compared with it in tests/apiserver/test_grammar.py)."""
    try:
        parse_manifest(manifest(cron))
    except SpecError:
        return False
    return True


def test_the_crd_carries_the_generated_never_fires_rule() -> None:
    rules = [v["rule"] for v in SCHEDULE["x-kubernetes-validations"]]
    assert never_fires_rule() in rules, (
        "regenerate the rule: python -c 'from queueworker.cron import never_fires_rule as r; print(r())'"
    )


def number(n: int, month: bool) -> st.SearchStrategy[str]:
    spellings = [str(n)] + ([f"0{n}"] if n < 10 else []) + ([MONTH_NAMES[n - 1].upper()] if month else [])
    return st.sampled_from(spellings)


def item(top: int, month: bool, starts: st.SearchStrategy[int]) -> st.SearchStrategy[str]:
    """One list item: *, N or N-M (wrapping too), with or without /step."""
    head = st.one_of(
        st.just("*"),
        starts.flatmap(lambda a: number(a, month)),
        st.tuples(starts, st.integers(1, top)).flatmap(
            lambda ab: st.tuples(number(ab[0], month), number(ab[1], month)).map("-".join)
        ),
    )
    step = st.one_of(st.just(""), st.integers(1, 99).map(lambda s: f"/{s}"))
    return st.tuples(head, step).map("".join)


def field(top: int, month: bool, starts: st.SearchStrategy[int]) -> st.SearchStrategy[str]:
    return st.lists(item(top, month, starts), min_size=1, max_size=3).map(",".join)


#: Expressions near the "never fires" boundary: days mostly 28..31, any months.
boundary = st.tuples(
    field(31, False, st.integers(28, 31) | st.integers(1, 31)), field(12, True, st.integers(1, 12))
).map(lambda dm: f"0 0 {dm[0]} {dm[1]} *")


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
def test_never_fires_examples(expr: str, never: bool) -> None:
    assert cron_never_fires(expr) is never
    assert accepted(expr) is not never


def test_crontab_kwargs_spell_names_sunday_steps_and_wraps_as_numbers() -> None:
    assert crontab_kwargs("5/15 22-2 1 JAN,jul fri-mon") == {
        "minute": "5,20,35,50", "hour": "0,1,2,22,23", "day_of_month": "1", "month_of_year": "1,7",
        "day_of_week": "0,1,5,6",
    }  # fmt: skip
    assert crontab_kwargs("0 0 * * 7")["day_of_week"] == "0"
    assert crontab_kwargs("0 7 * * *") == {
        "minute": "0", "hour": "7", "day_of_month": "*", "month_of_year": "*", "day_of_week": "*"
    }  # fmt: skip


@pytest.mark.parametrize("expr", ["61 * * * *", "0 0 30 2 *", "* * * *", "0 0 * * 8", "@daily"])
def test_celery_crontab_refuses_what_the_spec_refuses(expr: str) -> None:
    with pytest.raises(ValueError, match="invalid cron expression"):
        celery_crontab(expr)
