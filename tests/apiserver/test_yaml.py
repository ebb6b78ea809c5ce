"""`queueworker.api.kubeyaml` reads YAML as kubectl does: for generated plain scalars, as values and as
mapping keys, the JSON it yields equals what sigs.k8s.io/yaml (kubectl's and Helm's converter, built
here as yaml2json) sends the API server."""

from __future__ import annotations

import json
import math
import subprocess
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from queueworker.api import kubeyaml

from hack.cluster import binaries

TRICKY = [
    "0.25e1",
    "1e9",
    "1E+3",
    ".5",
    ".5e1",
    "08",
    "0x1F",
    "0o17",
    "017",
    "0b101",
    "1_000",
    "1:30",
    "+12",
    "-0",
    "y",
    "Y",
    "n",
    "No",
    "on",
    "OFF",
    "~",
    "null",
    "2001-12-14",
    "2001-12-14T21:59:43.10-05:00",
    "2001-12-14 21:59:43.10",
    "2001-2-3",
    "9223372036854775808",
    "18446744073709551616",
    "1e400",
    ".inf",
    "-.Inf",
    "0.",
    "+.5",
    "500m",
    "1.5Gi",
    "true",
    "False",
    "=",
    "<<x",
    "0x",
    "1__2",
    "+0x10",
    "-0b1",
]
ALPHABET = "0123456789+-._eExXoObBnNyYtT:~"


@pytest.fixture(scope="module")
def yaml2json() -> Any:
    try:
        tool = binaries.ensure("yaml2json") / "yaml2json"
    except binaries.BuildError as exc:
        pytest.fail(str(exc))

    def run(docs: list[str]) -> list[Any]:
        text = "".join(f"---\n{d}\n" for d in docs)
        out = subprocess.run([str(tool)], input=text, capture_output=True, text=True, check=True, timeout=30)
        return [json.loads(line) for line in out.stdout.splitlines()]

    return run


def as_sent(value: Any) -> Any:
    """A value as the API server decodes the JSON: integral floats are integers, NaN/Inf not JSON."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return "not JSON"
        return int(value) if value.is_integer() and abs(value) < 2**63 else value
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        return float(value)
    if isinstance(value, dict):
        return {k: as_sent(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_sent(v) for v in value]
    return value


def compare(yaml2json: Any, scalars: list[str]) -> None:
    docs = [f"v: {s}" for s in scalars] + [f"{s}: k" for s in scalars]
    go = [as_sent(doc) for doc in yaml2json(docs)]
    assert len(go) == len(docs)
    for doc, theirs in zip(docs, go, strict=True):
        try:
            ours = as_sent(kubeyaml.load(doc))
        except yaml.YAMLError:
            continue  # not a plain scalar for PyYAML's grammar (e.g. an indicator): not compared
        if isinstance(theirs, dict) and set(theirs) == {"error"}:
            theirs = "not JSON" if "unsupported value" in theirs["error"] else theirs
        if theirs == "not JSON" or ours == "not JSON":
            assert ours == theirs or ("not JSON" in (ours, theirs) and not isinstance(theirs, dict)), doc
            continue
        assert ours == theirs, f"{doc!r}: kubeyaml {ours!r}, kubectl {theirs!r}"


def test_tricky_scalars(yaml2json: Any) -> None:
    compare(yaml2json, TRICKY)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet=ALPHABET, min_size=1, max_size=12), min_size=1, max_size=20))
def test_generated_scalars(yaml2json: Any, scalars: list[str]) -> None:
    # A lone indicator or a document marker is YAML syntax, not a scalar.
    compare(
        yaml2json, [s for s in scalars if (len(s) > 1 or s not in "-:") and not s.startswith(("---", "..."))]
    )
