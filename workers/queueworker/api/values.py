"""Readers for the schedule fields whose grammar is more than a pattern: `cron` (queueworker.cron's,
with a message saying which part is wrong), `every` (a duration, in seconds) and the task's JSON
`args` and `kwargs`. The table (api/fields.py) names them as those fields' `parse`."""

from __future__ import annotations

from typing import Any

from queueworker.api.checks import Checker, duration_seconds, is_json
from queueworker.api.schema import Field
from queueworker.cron import cron_problem


def read_cron(check: Checker, raw: Any, path: str, field: Field) -> str | None:
    text = check.string_value(raw, path, pattern=None, max_length=field.max_length or 0, what=field.what)
    if text is None:
        return None
    problem = cron_problem(text)
    if problem is not None:
        check.error(path, f"{problem}; got {text!r}, e.g. '0 7 * * *' (daily at 07:00)")
        return None
    return text


def read_every(check: Checker, raw: Any, path: str, field: Field) -> float | None:
    """The interval in seconds (zero is left to the rule EVERY_POSITIVE)."""
    text = check.string_value(raw, path, pattern=None, max_length=field.max_length or 0, what=field.what)
    if text is None:
        return None
    seconds = duration_seconds(text)
    if seconds is None:
        check.error(path, f"must be {field.what}; got {text!r}")
    return seconds


def read_args(check: Checker, raw: Any, path: str, field: Field) -> tuple[Any, ...]:
    args = check.items(raw, path, field.max_items or 0)
    if not is_json(args):
        check.error(path, "must hold only JSON values (quote dates and timestamps)")
    return tuple(args)


def read_kwargs(check: Checker, raw: Any, path: str, field: Field) -> dict[str, Any]:
    if check.fields(raw, path, None) is None:
        return {}
    kwargs = dict(raw)
    limit = field.max_properties or 0
    if len(kwargs) > limit:
        check.error(path, f"must have at most {limit} entries, got {len(kwargs)}")
    elif not is_json(kwargs):
        check.error(path, "must hold only JSON values (quote dates and timestamps)")
    return kwargs
