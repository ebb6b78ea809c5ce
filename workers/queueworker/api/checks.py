"""Building blocks of the spec model: field errors, the patterns the API allows, and a `Checker` that
reads one mapping field at a time, records every problem with its field path, and hands back a usable
value (the default) so checking can go on and report everything at once.

The field table (api/fields.py), from which the CRD is generated, uses these patterns; api/walk.py
reads a manifest by that table with this Checker. Like the Kubernetes API server: a `null` field counts
as absent, an integral float such as `2.0` is an integer, `2.5` and `true` are not. The cron grammar is
queueworker.cron's.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

INT32_MAX = 2**31 - 1

#: A DNS label (RFC 1123), as Kubernetes names namespaces and pods; at most MAX_DNS_LABEL characters.
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
MAX_DNS_LABEL = 63
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
APP = re.compile(rf"^{_IDENT}(\.{_IDENT})*(:{_IDENT}(\.{_IDENT})*)?$")
QUEUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
NO_SPACE = re.compile(r"^\S+$")
ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_DECIMAL = r"(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
#: Kubernetes' quantity syntax without the sign (resource quantities cannot be negative).
QUANTITY = re.compile(rf"^{_DECIMAL}(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?{_DECIMAL}))?$")
#: The CRD's form of a schedule's `every` (a non-empty duration; DURATION reads it).
EVERY = re.compile(
    r"^([0-9]{1,6}d([0-9]{1,6}h)?([0-9]{1,6}m)?([0-9]{1,6}s)?|[0-9]{1,6}h([0-9]{1,6}m)?([0-9]{1,6}s)?"
    r"|[0-9]{1,6}m([0-9]{1,6}s)?|[0-9]{1,6}s)$"
)
DURATION = re.compile(r"^(?:([0-9]{1,6})d)?(?:([0-9]{1,6})h)?(?:([0-9]{1,6})m)?(?:([0-9]{1,6})s)?$")


def is_dns_label(text: str) -> bool:
    return len(text) <= MAX_DNS_LABEL and DNS_LABEL.match(text) is not None


def duration_seconds(text: str) -> float | None:
    """'1h30m' -> 5400.0; units d, h, m, s in that order; None when `text` is not such a duration."""
    match = DURATION.match(text)
    if not text or match is None:
        return None
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return float(((days * 24 + hours) * 60 + minutes) * 60 + seconds)


@dataclass(frozen=True)
class FieldError:
    path: str  # e.g. "spec.autoscaling.minReplicas"
    message: str  # e.g. "must be <= maxReplicas (5 > 2)"

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class SpecError(ValueError):
    """Every problem found in one manifest."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors))


def describe(value: Any) -> str:
    """A short, type-naming rendering of a bad value for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, str):
        text = value if len(value) <= 60 else value[:57] + "..."
        return f"string {text!r}"
    if isinstance(value, int) and abs(value) >= 10**30:
        return f"a {value.bit_length()}-bit number"
    if isinstance(value, int | float):
        return f"number {value!r}"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return f"{type(value).__name__} {str(value)[:60]!r}"


def suggest(word: str, choices: Iterable[str]) -> str:
    """ "; did you mean 'x'?" for a near miss, else ''."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in choices}
        if word.lower() in lowered:
            close = [lowered[word.lower()]]
    return f"; did you mean {close[0]!r}?" if close else ""


def join(path: str, key: str) -> str:
    if not key.isprintable():  # control characters would garble a terminal: show them escaped
        key = json.dumps(key)
    return f"{path}.{key}" if path else key


def is_json(value: Any) -> bool:
    """True for values a JSON document can hold (YAML also produces dates, sets, NaN...)."""
    if value is None or isinstance(value, bool | str | int):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list | tuple):
        return all(is_json(v) for v in value)
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and is_json(v) for k, v in value.items())
    return False


class Checker:
    """Collects FieldErrors; each reader returns a usable value (the default on error) so parsing goes on."""

    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def error(self, path: str, message: str) -> None:
        self.errors.append(FieldError(path, message))

    def fields(
        self,
        value: Any,
        path: str,
        allowed: Iterable[str] | None,
        *,
        required: Iterable[str] | Mapping[str, str] = (),
        what: str = "an object (mapping)",
    ) -> dict[str, Any] | None:
        """The non-null entries of a mapping; unknown keys (when `allowed` is given) and missing required
        keys are errors. Returns None (after an error) when `value` is not a mapping."""
        if not isinstance(value, Mapping):
            self.error(path, f"must be {what}, got {describe(value)}")
            return None
        out: dict[str, Any] = {}
        names = list(allowed) if allowed is not None else None
        for key, item in value.items():
            if not isinstance(key, str):
                self.error(path, f"keys must be strings, got {describe(key)}")
                continue
            if names is not None and key not in names:
                hint = suggest(key, names) or f" (allowed: {', '.join(names)})"
                self.error(join(path, key), f"unknown field{hint}")
                continue
            if item is not None:
                out[key] = item
        hints = required if isinstance(required, Mapping) else {}
        for key in required:
            if key not in out:
                self.error(join(path, key), f"required: {hints[key]}" if hints.get(key) else "required")
        return out

    def integer(
        self,
        d: Mapping[str, Any],
        key: str,
        path: str,
        default: int,
        *,
        minimum: int = 0,
        maximum: int = INT32_MAX,
    ) -> int:
        if key not in d:
            return default
        value, where = d[key], join(path, key)
        bounds = f"between {minimum} and {maximum}" if maximum < INT32_MAX else f">= {minimum}"
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(where, f"must be an integer {bounds}, got {describe(value)}")
            return default
        if not minimum <= value <= maximum:
            self.error(where, f"must be an integer {bounds}, got {describe(value).removeprefix('number ')}")
            return default
        return value

    def number(
        self, d: Mapping[str, Any], key: str, path: str, default: float, *, above: float, maximum: float
    ) -> float:
        if key not in d:
            return default
        value, where = d[key], join(path, key)
        ok_type = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok_type or not math.isfinite(value) or not above < value <= maximum:
            got = describe(value) if not ok_type else repr(value)
            self.error(where, f"must be a number > {above:g} and <= {maximum:g}, got {got}")
            return default
        return float(value)

    def boolean(self, d: Mapping[str, Any], key: str, path: str, default: bool) -> bool:
        if key not in d:
            return default
        value = d[key]
        if not isinstance(value, bool):
            self.error(join(path, key), f"must be true or false, got {describe(value)}")
            return default
        return value

    def string_value(
        self, value: Any, where: str, *, pattern: re.Pattern[str] | None, max_length: int, what: str
    ) -> str | None:
        """Check one string; `what` names the expected form, e.g. "a DNS label (lowercase, digits, '-')"."""
        if not isinstance(value, str):
            quote = " (quote it in YAML)" if isinstance(value, bool | int | float) else ""
            self.error(where, f"must be {what}, got {describe(value)}{quote}")
            return None
        if not value:
            self.error(where, f"must not be empty: expected {what}")
            return None
        if len(value) > max_length:
            self.error(where, f"must be at most {max_length} characters, got {len(value)}: expected {what}")
            return None
        if pattern is not None and pattern.match(value) is None:
            self.error(where, f"must be {what}, got {value!r}")
            return None
        return value

    def string(
        self,
        d: Mapping[str, Any],
        key: str,
        path: str,
        *,
        pattern: re.Pattern[str] | None,
        max_length: int,
        what: str,
    ) -> str | None:
        if key not in d:
            return None
        return self.string_value(d[key], join(path, key), pattern=pattern, max_length=max_length, what=what)

    def enum(
        self, d: Mapping[str, Any], key: str, path: str, *, choices: tuple[str, ...], default: str
    ) -> str:
        if key not in d:
            return default
        value = d[key]
        if not isinstance(value, str) or value not in choices:
            hint = suggest(value, choices) if isinstance(value, str) else ""
            if isinstance(value, bool):  # YAML 1.1 reads unquoted off/no/on/yes as booleans
                words = [
                    w
                    for w in (("off", "no", "false") if not value else ("on", "yes", "true"))
                    if w in choices
                ]
                hint = f'; quote it in YAML: "{words[0]}"' if words else ""
            self.error(join(path, key), f"must be one of {', '.join(choices)}; got {describe(value)}{hint}")
            return default
        return value

    def items(self, value: Any, where: str, max_items: int, min_items: int = 0) -> list[Any]:
        """The items of a list field (empty after an error)."""
        if not isinstance(value, list | tuple):
            self.error(where, f"must be a list, got {describe(value)}")
            return []
        if not min_items <= len(value) <= max_items:
            self.error(where, f"must have {min_items} to {max_items} items, got {len(value)}")
            return []
        return list(value)

    def string_set(
        self,
        d: Mapping[str, Any],
        key: str,
        path: str,
        *,
        pattern: re.Pattern[str] | None,
        max_length: int,
        what: str,
        max_items: int,
        min_items: int = 0,
    ) -> tuple[str, ...]:
        """A list of unique strings."""
        if key not in d:
            return ()
        where = join(path, key)
        out: list[str] = []
        for i, item in enumerate(self.items(d[key], where, max_items, min_items)):
            text = self.string_value(item, f"{where}[{i}]", pattern=pattern, max_length=max_length, what=what)
            if text is None:
                continue
            if text in out:
                self.error(f"{where}[{i}]", f"duplicate value {text!r} (each item must be unique)")
                continue
            out.append(text)
        return tuple(out)

    def string_map(
        self, d: Mapping[str, Any], key: str, path: str, *, max_items: int, max_length: int
    ) -> dict[str, str]:
        """A mapping of string keys to string values, e.g. nodeSelector."""
        if key not in d:
            return {}
        where = join(path, key)
        raw = self.fields(d[key], where, None)
        if raw is None:
            return {}
        if len(raw) > max_items:
            self.error(where, f"must have at most {max_items} entries, got {len(raw)}")
        out: dict[str, str] = {}
        for name, value in raw.items():
            if not isinstance(value, str) or len(value) > max_length:
                got = describe(value)
                self.error(
                    f"{where}[{name}]", f"must be a string of at most {max_length} characters, got {got}"
                )
            else:
                out[name] = value
        return out
