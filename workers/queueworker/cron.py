"""The cron grammar of `spec.schedules[].cron`, and the one conversion of a schedule into what beat loads.

Grammar: five fields, minute 0-59, hour 0-23, day of month 1-31, month 1-12 or jan-dec, day of week 0-7
(0 and 7 are Sunday) or sun-sat; each field a list of `*`, N or N-M (a range may wrap: `fri-mon`,
`22-2`), each optionally `/step`. croniter is the reference for what an expression means.

The spec model (`cron_problem`, `cron_never_fires`) and the CRD (`CRON`, the pattern; `never_fires_rule()`,
its CEL rule, generated here and checked equal to the CRD by a test) give the same verdict on every string.
Beat loads what they accept through `celery_crontab`: each field spelled as the explicit numbers croniter
expands it to (`crontab_kwargs`), which Celery's crontab parser always takes — Celery alone rejects `7`,
`N/step` and names in some fields, and reads wrapping ranges its own way.

Day of month and day of week: when both are restricted, a schedule fires on days matching both (Celery's
rule, the one beat applies); classic cron fires on days matching either.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from typing import TYPE_CHECKING

from croniter import croniter

if TYPE_CHECKING:
    from celery.schedules import crontab


def _cron_field(value: str) -> str:
    item = rf"(\*|({value})(-({value}))?)(/[1-9][0-9]?)?"
    return rf"{item}(,{item})*"


_MONTHS = "jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec"
_DAYS = "sun|mon|tue|wed|thu|fri|sat"
_CRON_VALUES = (
    ("minute", "0-59", "[0-5]?[0-9]"),
    ("hour", "0-23", "[01]?[0-9]|2[0-3]"),
    ("day of month", "1-31", "0?[1-9]|[12][0-9]|3[01]"),
    ("month", "1-12 or jan-dec", f"0?[1-9]|1[0-2]|(?i:{_MONTHS})"),
    ("day of week", "0-7 or sun-sat", f"[0-7]|(?i:{_DAYS})"),
)
_CRON_FIELDS = [re.compile(f"^{_cron_field(v)}$") for _, _, v in _CRON_VALUES]
#: Five cron fields with their ranges: minute 0-59, hour 0-23, day of month 1-31, month 1-12 or jan-dec,
#: day of week 0-7 (0 and 7 are Sunday) or sun-sat; each field a list of `*`, N or N-M, optionally `/step`.
CRON = re.compile("^" + " +".join(_cron_field(v) for _, _, v in _CRON_VALUES) + "$")


def cron_problem(expr: str) -> str | None:
    """What is wrong with a cron expression, naming the field; None when it is valid."""
    fields = expr.split()
    if len(fields) != 5:
        return f"must have five fields (minute hour day-of-month month day-of-week), got {len(fields)}"
    if expr != expr.strip() or re.search(r"[^ \S]", expr):
        return "must be five fields separated by spaces, without tabs, line breaks or spaces at either end"
    for (name, allowed, _), field, pattern in zip(_CRON_VALUES, fields, _CRON_FIELDS, strict=True):
        if not pattern.match(field):
            return f"{name} field {field!r} is not valid: use {allowed} as *, N, N-M, lists (a,b) and /step"
    if not croniter.is_valid(expr):
        return "is not a valid cron expression"
    return None


def cron_ok(expr: str) -> bool:
    return CRON.match(expr) is not None and cron_problem(expr) is None


#: Days in each month (February in a leap year: a schedule on the 29th fires then).
MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def cron_never_fires(expr: str) -> bool:
    """True when a valid expression's days of month occur in none of its months (e.g. `0 0 30 2 *`)."""
    _, _, days, months, _ = croniter(expr).expanded
    if "*" in days or "*" in months:
        return False
    return min(int(d) for d in days) > max(MONTH_DAYS[int(m) - 1] for m in months)


_CRONTAB_KEYS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")


def crontab_kwargs(expr: str) -> dict[str, str]:
    """A valid cron expression as `celery.schedules.crontab(**kwargs)` takes it: each field becomes `*` or
    the explicit, sorted list of values croniter expands it to (names become numbers, weekday 7 becomes
    0, `N/step` and wrapping ranges are spelled out), which Celery's parser always accepts."""
    out: dict[str, str] = {}
    for key, values in zip(_CRONTAB_KEYS, croniter(expr).expanded, strict=True):
        if "*" in values:
            out[key] = "*"
            continue
        numbers = {int(v) % 7 if key == "day_of_week" else int(v) for v in values}
        out[key] = ",".join(str(v) for v in sorted(numbers))
    return out


def celery_crontab(expr: str) -> crontab:
    """The Celery crontab beat runs for an expression the spec accepts; ValueError, saying why, for any
    other string (the spec rejects those, so a stored schedule never makes beat fail)."""
    from celery.schedules import crontab

    problem = cron_problem(expr)
    if problem is None and cron_never_fires(expr):
        problem = "never fires: its days of month occur in none of its months"
    if problem is not None:
        raise ValueError(f"invalid cron expression {expr!r}: {problem}; e.g. '0 7 * * *'")
    return crontab(**crontab_kwargs(expr))


# -- the CRD's "never fires" rule -------------------------------------------------------------------
# Never fires <=> (smallest day >= 30 and months only February) or (smallest day = 31 and months only
# those with 30 days or fewer). Each side is a property of every list item of the field, so it is a
# regular expression over the items: those below are enumerated from croniter's expansion of every
# item the grammar allows (a test checks the verdict against cron_never_fires over the grammar).

_SHORT_MONTHS = frozenset(m for m, days in enumerate(MONTH_DAYS, 1) if days < 31)


def _number(n: int, names: tuple[str, ...]) -> str:
    spelled = [f"0?{n}" if n < 10 else str(n)] + ([f"(?i:{names[n - 1]})"] if names else [])
    return spelled[0] if len(spelled) == 1 else "(" + "|".join(spelled) + ")"


def _digits(values: Iterable[int]) -> str:
    """A character class for these digits, runs written as ranges: [1-9], [0-9], [3-57]."""
    ds = sorted(set(values))
    runs: list[str] = []
    i = 0
    while i < len(ds):
        j = i
        while j + 1 < len(ds) and ds[j + 1] == ds[j] + 1:
            j += 1
        runs.append(f"{ds[i]}-{ds[j]}" if j - i >= 2 else "".join(str(d) for d in ds[i : j + 1]))
        i = j + 1
    return f"[{''.join(runs)}]"


def _int_set(values: Iterable[int]) -> str:
    """A regular expression for exactly these numbers of 1..99 (written without leading zeros)."""
    wanted = set(values)
    units = [v for v in wanted if v < 10]
    by_units: dict[tuple[int, ...], list[int]] = {}
    for tens in range(1, 10):
        digits = tuple(u for u in range(10) if tens * 10 + u in wanted)
        if digits:
            by_units.setdefault(digits, []).append(tens)
    alts = [_digits(units)] if units else []
    alts += [_digits(tens) + _digits(digits) for digits, tens in by_units.items()]
    return alts[0] if len(alts) == 1 else "(" + "|".join(alts) + ")"


def _items(field: int, starts: Iterable[int], keep: frozenset[int] | None, min_day: int | None) -> str:
    """The list items of one field whose expansion is within `keep` (months) or whose smallest value is
    at least `min_day` (days), as one alternation (heads that take the same steps grouped)."""
    top, names = (31, ()) if field == 2 else (12, tuple(_MONTHS.split("|")))
    full = frozenset(range(1, top + 1))
    heads: list[tuple[str, str]] = [("*", r"\*")]
    for a in starts:
        heads.append((str(a), _number(a, names)))
        heads += [(f"{a}-{b}", f"{_number(a, names)}-{_number(b, names)}") for b in range(1, top + 1)]
    groups: dict[tuple[int, ...], list[str]] = {}
    for head, head_regex in heads:
        ok: list[int] = []  # 0 stands for "no step"
        for step in range(100):
            fields = ["0", "0", "*", "*", "*"]
            fields[field] = head if step == 0 else f"{head}/{step}"
            expanded = croniter(" ".join(fields)).expanded[field]
            values = full if "*" in expanded else frozenset(int(v) for v in expanded)
            if (keep is not None and values <= keep) or (min_day is not None and min(values) >= min_day):
                ok.append(step)
        if ok:
            groups.setdefault(tuple(ok), []).append(head_regex)
    alts: list[str] = []
    for ok_steps, head_regexes in groups.items():
        head = head_regexes[0] if len(head_regexes) == 1 else "(" + "|".join(head_regexes) + ")"
        steps = [s for s in ok_steps if s]
        if not steps:
            alts.append(head)
        elif 0 in ok_steps:
            alts.append(f"{head}(/{_int_set(steps)})?")
        else:
            alts.append(f"{head}/{_int_set(steps)}")
    item = "(" + "|".join(alts) + ")"
    return f"{item}(,{item})*"


@cache
def never_fires_patterns() -> tuple[str, str]:
    """Two patterns over a whole expression; it never fires exactly when either matches."""
    rest = r"^[^ ]+ +[^ ]+ +{days} +{months} +[^ ]+$"
    months = range(1, 13)
    feb_only = rest.format(days=_items(2, (30, 31), None, 30), months=_items(3, months, frozenset({2}), None))
    short_only = rest.format(days=_items(2, (31,), None, 31), months=_items(3, months, _SHORT_MONTHS, None))
    return feb_only, short_only


def never_fires_rule() -> str:
    """The CRD's CEL rule (on a schedule) rejecting cron expressions that never fire."""
    feb_only, short_only = never_fires_patterns()
    return f"!has(self.cron) || !(self.cron.matches('{feb_only}') || self.cron.matches('{short_only}'))"
