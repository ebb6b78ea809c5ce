"""YAML read the way kubectl and Helm read it, so `qw render` judges the object the API server receives.

kubectl and Helm parse manifests with Go's YAML (sigs.k8s.io/yaml over yaml.v2), whose plain scalars
resolve differently from PyYAML's YAML 1.1 rules. The differences that change a QueueWorker:

- floats need no dot and no exponent sign: `0.25e1` and `1e9` are numbers (PyYAML: strings), `08` is 8;
- `y`, `Y`, `n`, `N` are booleans, as are yes/no/on/off/true/false in their three spellings;
- integers are Go literals (`0x1F`, `0o17`, `017`, `0b101`, `_` anywhere): `1:30` stays a string
  (PyYAML: the sexagesimal 90);
- a timestamp stays the string it is (`2001-12-14`; PyYAML: a date);
- mapping keys are strings in the JSON the API server gets (`1: a` is the key "1").

`KubeLoader` is a SafeLoader with those rules; `manifests` builds its strict loader on it.
"""

from __future__ import annotations

import math
import re
import struct
from decimal import Decimal
from typing import Any

import yaml

INT_TAG = "tag:yaml.org,2002:int"
FLOAT_TAG = "tag:yaml.org,2002:float"
BOOL_TAG = "tag:yaml.org,2002:bool"
NULL_TAG = "tag:yaml.org,2002:null"
STR_TAG = "tag:yaml.org,2002:str"
MERGE_TAG = "tag:yaml.org,2002:merge"

TRUE = frozenset(["y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "true", "True", "TRUE"])
FALSE = frozenset(["n", "N", "no", "No", "NO", "off", "Off", "OFF", "false", "False", "FALSE"])
NULL = frozenset(["~", "null", "Null", "NULL", ""])
SPECIAL_FLOATS = {
    **dict.fromkeys([".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"], math.inf),
    **dict.fromkeys(["-.inf", "-.Inf", "-.INF"], -math.inf),
    **dict.fromkeys([".nan", ".NaN", ".NAN"], math.nan),
}
#: Go's strconv.ParseInt(s, 0, 64) syntax, once yaml.v2 has removed every underscore.
GO_INT = re.compile(r"^[-+]?(?:0[xX][0-9a-fA-F]+|0[bB][01]+|0[oO]?[0-7]+|0|[1-9][0-9]*)$")
#: yaml.v2's yamlStyleFloat, tried after the integer forms.
GO_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
DOT_FLOAT = re.compile(r"^\.[0-9]+([eE][-+]?[0-9]+)?$")
INT64 = (-(2**63), 2**63 - 1)
UINT64_MAX = 2**64 - 1


def go_int(text: str) -> int | None:
    """The integer Go's ParseInt (or, past int64, ParseUint) reads from `text`, or None."""
    plain = text.replace("_", "")
    if not GO_INT.match(plain):
        return None
    sign, digits = (-1, plain[1:]) if plain[0] == "-" else (1, plain.lstrip("+"))
    if plain[0] == "+" and len(plain) - len(digits) > 1:
        return None
    base = 10
    if digits[:2].lower() in ("0x", "0b", "0o"):
        base, digits = {"x": 16, "b": 2, "o": 8}[digits[1].lower()], digits[2:]
    elif len(digits) > 1 and digits[0] == "0":
        base = 8
    value = sign * int(digits, base)
    if INT64[0] <= value <= INT64[1]:
        return value
    if sign > 0 and plain[0] != "+" and value <= UINT64_MAX:
        return value
    return None


def go_float(text: str) -> float | None:
    plain = text.replace("_", "") if text[:1] != "." else text
    pattern = DOT_FLOAT if text[:1] == "." else GO_FLOAT
    if not pattern.match(plain):
        return None
    value = float(plain)
    return None if math.isinf(value) else value  # Go's ParseFloat reports a range error: a string


def scalar_tag(value: str) -> str:
    """The tag yaml.v2 resolves a plain scalar to."""
    if value in NULL:
        return NULL_TAG
    if value in TRUE or value in FALSE:
        return BOOL_TAG
    if value in SPECIAL_FLOATS:
        return FLOAT_TAG
    if value == "<<":
        return MERGE_TAG
    first = value[0]
    if first == ".":
        return FLOAT_TAG if go_float(value) is not None else STR_TAG
    if not (first.isdigit() or first in "+-"):
        return STR_TAG
    if go_int(value) is not None:
        return INT_TAG
    if go_float(value) is not None:
        return FLOAT_TAG
    return STR_TAG


def json_key(key: Any) -> Any:
    """A mapping key as sigs.k8s.io/yaml writes it into JSON: scalars become strings (floats as Go
    formats a float32), and an integer past int64 is refused as there."""
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, int):
        if not INT64[0] <= key <= INT64[1]:
            raise ValueError(f"the mapping key {key} is past 64-bit integers (kubectl refuses it): quote it")
        return str(key)
    if isinstance(key, float):
        if math.isnan(key):
            return ".nan"
        single = _float32(key)
        if math.isinf(single):
            return ".inf" if single > 0 else "-.inf"
        return go_format_float(single, _shortest32(single))
    return key


def _float32(value: float) -> float:
    try:
        packed: float = struct.unpack("f", struct.pack("f", value))[0]
    except OverflowError:
        return math.copysign(math.inf, value)
    return packed


def _shortest32(value: float) -> str:
    """The shortest decimal digits that read back as the same float32."""
    for precision in range(1, 10):
        text = f"{value:.{precision - 1}e}"
        if _float32(float(text)) == value:
            return text
    return repr(value)


def go_format_float(value: float, digits: str | None = None) -> str:
    """Go's strconv.FormatFloat(value, 'g', -1, ...) from the shortest `digits` (default: of a float64):
    exponent form from 1e+06 and below 1e-04."""
    if value == 0:
        return "-0" if math.copysign(1, value) < 0 else "0"
    sign, figures, exponent = Decimal(digits or repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, figures))
    exp = len(text) + exponent - 1
    minus = "-" if sign else ""
    if exp < -4 or exp >= 6:
        mantissa = text[0] + (f".{text[1:]}" if len(text) > 1 else "")
        return f"{minus}{mantissa}e{'+' if exp >= 0 else '-'}{abs(exp):02d}"
    point = exp + 1
    if point <= 0:
        return f"{minus}0.{'0' * -point}{text}"
    if point >= len(text):
        return minus + text + "0" * (point - len(text))
    return f"{minus}{text[:point]}.{text[point:]}"


class KubeLoader(yaml.SafeLoader):
    """A SafeLoader whose plain scalars resolve as in kubectl and Helm (see the module docstring)."""

    def resolve(self, kind: type[yaml.Node], value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is yaml.ScalarNode and implicit[0]:
            return scalar_tag(value)
        tag: str = super().resolve(kind, value, implicit)
        return tag


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int | str:
    text = loader.construct_scalar(node)
    value = go_int(text)
    return value if value is not None else text


def _construct_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> float | str:
    text = loader.construct_scalar(node)
    if text in SPECIAL_FLOATS:
        return SPECIAL_FLOATS[text]
    value = go_float(text)
    return value if value is not None else text


def _construct_bool(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> bool:
    return loader.construct_scalar(node) in TRUE


def construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    """A mapping with JSON keys; a null key is refused, as kubectl refuses it."""
    mapping = loader.construct_mapping(node, deep=deep)
    if None in mapping:
        raise yaml.constructor.ConstructorError(
            None, None, "a mapping key is null (kubectl refuses it): quote it or name it", node.start_mark
        )
    try:
        return {json_key(k): v for k, v in mapping.items()}
    except ValueError as exc:
        raise yaml.constructor.ConstructorError(None, None, str(exc), node.start_mark) from exc


KubeLoader.add_constructor(INT_TAG, _construct_int)
KubeLoader.add_constructor(FLOAT_TAG, _construct_float)
KubeLoader.add_constructor(BOOL_TAG, _construct_bool)
KubeLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)


def load(text: str) -> Any:
    """One YAML document, read as kubectl reads it."""
    return yaml.load(text, Loader=KubeLoader)  # noqa: S506 - a SafeLoader subclass
