"""The import layers in pyproject.toml (checked by `make lint` with import-linter) name every part of
both packages: a module or package left out of them would escape the layering unnoticed."""

from __future__ import annotations

import pkgutil
import tomllib
from pathlib import Path

import queueworker
import queueworker_operator

PYPROJECT = Path(__file__).resolve().parents[3] / "pyproject.toml"
#: Children that are not a layer: the package's entry points and markers.
NOT_LAYERS = {"__main__"}


def contract(name: str) -> dict[str, object]:
    config = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["tool"]["importlinter"]
    return next(c for c in config["contracts"] if c["name"] == name)


def layered(name: str) -> set[str]:
    layers = contract(name)["layers"]
    assert isinstance(layers, list)
    return {part.strip() for layer in layers for part in layer.split("|")}


def children(package: object) -> set[str]:
    name = package.__name__  # type: ignore[attr-defined]
    return {f"{name}.{m.name}" for m in pkgutil.iter_modules(package.__path__)} - {  # type: ignore[attr-defined]
        f"{name}.{n}" for n in NOT_LAYERS
    }


def test_every_part_of_queueworker_is_in_a_layer() -> None:
    assert children(queueworker) == layered("queueworker layers")


def test_every_module_of_the_operator_is_in_a_layer() -> None:
    assert children(queueworker_operator) == layered("operator layers")


def test_the_shared_package_may_not_import_the_operator() -> None:
    forbidden = contract("nothing shared imports the operator")
    assert forbidden["source_modules"] == ["queueworker"]
    assert forbidden["forbidden_modules"] == ["queueworker_operator"]
