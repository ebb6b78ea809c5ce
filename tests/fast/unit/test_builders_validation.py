"""Every object the builders emit for a varied set of QueueWorkers is one a Kubernetes API server
accepts (strict schemas for 1.28 and 1.34; KEDA's CRD schema for ScaledObjects), and the strict
validation helper itself rejects what a server would."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from queueworker.builders import render
from queueworker.settings import Settings

from tests.fast.unit.test_builders import corpus
from tests.support.validate import InvalidObject, object_problems, validate_object

VERSIONS = ("1.28.0", "1.34.0")
OBJECTS = render(corpus(), Settings())


def test_corpus_covers_every_kind() -> None:
    assert {o["kind"] for o in OBJECTS} == {
        "ConfigMap",
        "Deployment",
        "PodDisruptionBudget",
        "ScaledObject",
        "HorizontalPodAutoscaler",
    }


@pytest.mark.parametrize("version", VERSIONS)
def test_every_object_validates_strictly(version: str) -> None:
    for obj in OBJECTS:
        validate_object(obj, version)


def test_names_and_labels_within_limits() -> None:
    for obj in OBJECTS:
        meta = obj["metadata"]
        assert len(meta["name"]) <= 63, meta["name"]
        for value in meta["labels"].values():
            assert len(value) <= 63


def _deployment() -> dict[str, Any]:
    return copy.deepcopy(next(o for o in OBJECTS if o["kind"] == "Deployment"))


def _scaled_object() -> dict[str, Any]:
    return copy.deepcopy(next(o for o in OBJECTS if o["kind"] == "ScaledObject"))


def test_validator_rejects_unknown_builtin_field() -> None:
    obj = _deployment()
    obj["spec"]["template"]["spec"]["containers"][0]["bogus"] = 1
    with pytest.raises(InvalidObject, match="bogus"):
        validate_object(obj, "1.28.0")


def test_validator_rejects_wrong_types_and_unknown_kinds() -> None:
    obj = _deployment()
    obj["spec"]["replicas"] = "three"
    assert object_problems(obj, "1.34.0")
    assert object_problems(
        {"apiVersion": "example.com/v1", "kind": "Nope", "metadata": {"name": "x"}}, "1.28.0"
    )


def test_validator_checks_scaled_objects_against_the_keda_crd() -> None:
    obj = _scaled_object()
    obj["spec"]["triggers"][0]["extra"] = "x"
    assert any("extra" in p for p in object_problems(obj, "1.28.0"))
    obj = _scaled_object()
    obj["spec"]["triggers"][0]["metadata"]["threshold"] = 3  # metadata values must be strings
    assert object_problems(obj, "1.28.0")
    obj = _scaled_object()
    del obj["spec"]["scaleTargetRef"]
    assert object_problems(obj, "1.28.0")
    obj = _scaled_object()
    obj["metadata"]["bogus"] = 1
    assert object_problems(obj, "1.28.0")


def test_validator_checks_names_and_label_values() -> None:
    obj = _deployment()
    obj["metadata"]["name"] = "x" * 64
    assert any("DNS label" in p for p in object_problems(obj, "1.28.0"))
    obj = _deployment()
    obj["spec"]["template"]["metadata"]["labels"]["queueworker.dev/queue"] = "a:b"
    assert any("invalid label value" in p for p in object_problems(obj, "1.28.0"))
    obj = _deployment()
    obj["metadata"]["labels"]["bad key!"] = "x"
    assert any("invalid label key" in p for p in object_problems(obj, "1.28.0"))


def test_validator_knows_the_prometheus_operator_kinds() -> None:
    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "queueworker", "namespace": "monitoring"},
        "spec": {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "up == 0", "for": "5m"}]}]},
    }
    monitor = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "queueworker"},
        "spec": {
            "selector": {"matchLabels": {"app": "x"}},
            "endpoints": [{"port": "metrics", "interval": "30s"}],
        },
    }
    for obj in (rule, monitor):
        assert object_problems(obj, "1.28.0") == []
    rule["spec"]["groups"][0]["rules"][0]["bogus"] = 1  # type: ignore[index]
    assert any("bogus" in p for p in object_problems(rule, "1.28.0"))
