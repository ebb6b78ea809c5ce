"""The chart ships the operator's CRD unchanged (`make crds` writes both from the field table)."""

from __future__ import annotations

import yaml

from tests.support.rendering import CHART, K8S_VERSIONS, REPO, chart
from tests.support.validate import validate_object

SOURCE = REPO / "operator" / "crds"
COPY = CHART / "crds"


def test_chart_crds_are_identical_to_the_operators() -> None:
    source = {p.name: p.read_bytes() for p in sorted(SOURCE.glob("*.yaml"))}
    copied = {p.name: p.read_bytes() for p in sorted(COPY.glob("*.yaml"))}
    assert source, "operator/crds has no CRD"
    assert sorted(copied) == sorted(source), "run `make crds`: the chart's crds/ differs from operator/crds"
    for name, data in source.items():
        assert copied[name] == data, (
            f"charts/queueworker/crds/{name} differs from operator/crds: run `make crds`"
        )


def test_helm_loads_the_crd_and_it_is_valid() -> None:
    loaded = chart().crds
    assert [c["filename"] for c in loaded] == [
        f"queueworker/crds/{p.name}" for p in sorted(COPY.glob("*.yaml"))
    ]
    for entry in loaded:
        docs = [d for d in yaml.safe_load_all(entry["data"]) if d]
        assert [d["kind"] for d in docs] == ["CustomResourceDefinition"]
        assert docs[0]["spec"]["group"] == "queueworker.dev"
        assert docs[0]["spec"]["names"]["kind"] == "QueueWorker"
        for version in K8S_VERSIONS:
            validate_object(docs[0], version)
