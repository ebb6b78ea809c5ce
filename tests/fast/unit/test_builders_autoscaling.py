"""The ScaledObject (mode keda) and HorizontalPodAutoscaler (mode hpa) builders."""

from __future__ import annotations

import pytest
from queueworker.api.spec import Autoscaling
from queueworker.builders import autoscaler, horizontal_pod_autoscaler, problems, render, scaled_object
from queueworker.builders.autoscaling import queue_matcher
from queueworker.settings import Settings

from tests.fast.unit.test_builders import make_qw

SETTINGS = Settings(prometheus_url="http://prom.monitoring:9090", autoscale_interval=2.5)


def test_no_autoscaler_for_builtin_and_off() -> None:
    for mode in ("builtin", "off"):
        qw = make_qw(autoscaling=Autoscaling(mode=mode))
        assert autoscaler(qw, SETTINGS) is None
        assert {o["kind"] for o in render([qw], SETTINGS)} == {
            "ConfigMap",
            "Deployment",
            "PodDisruptionBudget",
        }


def test_scaled_object_targets_the_worker_deployment() -> None:
    qw = make_qw(
        queues=("emails", "emails.low"),
        concurrency=4,
        autoscaling=Autoscaling(
            mode="keda", min_replicas=0, max_replicas=7, target_wait_seconds=12.5, scale_down_delay_seconds=90
        ),
    )
    so = scaled_object(qw, SETTINGS)
    deploy = next(o for o in render([qw], SETTINGS) if o["kind"] == "Deployment")
    spec = so["spec"]
    assert so["apiVersion"] == "keda.sh/v1alpha1" and so["kind"] == "ScaledObject"
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deploy["metadata"]["name"],
    }
    assert (spec["minReplicaCount"], spec["maxReplicaCount"], spec["cooldownPeriod"]) == (0, 7, 90)
    assert spec["pollingInterval"] == 3
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 90
    assert behavior["scaleUp"]["stabilizationWindowSeconds"] == 0
    wait, tasks = spec["triggers"]
    for trigger in (wait, tasks):
        assert trigger["type"] == "prometheus"
        assert trigger["metadata"]["serverAddress"] == "http://prom.monitoring:9090"
        assert all(isinstance(v, str) for v in trigger["metadata"].values())
    assert "queueworker_queue_oldest_wait_seconds" in wait["metadata"]["query"]
    assert wait["metadata"]["threshold"] == "12.5"
    assert wait["metricType"] == "Value"
    assert "celery_queue_length" in tasks["metadata"]["query"]
    assert "queueworker_queue_reserved" in tasks["metadata"]["query"]
    assert tasks["metadata"]["threshold"] == "4"
    assert tasks["metricType"] == "AverageValue"


def test_queue_matcher_escapes_dots() -> None:
    assert queue_matcher(("emails", "emails.low", "a:b")) == 'queue_name=~"emails|emails\\\\.low|a:b"'


def test_hpa_on_external_queue_metrics() -> None:
    qw = make_qw(
        queues=("a", "b"),
        concurrency=8,
        autoscaling=Autoscaling(
            mode="hpa", min_replicas=0, max_replicas=9, target_wait_seconds=30, scale_down_delay_seconds=7200
        ),
    )
    hpa = horizontal_pod_autoscaler(qw, SETTINGS)
    spec = hpa["spec"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert spec["minReplicas"] == 1  # autoscaling/v2 cannot scale to zero
    assert spec["maxReplicas"] == 9
    assert spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 3600  # the API's maximum
    seen = {
        (m["external"]["metric"]["name"], m["external"]["metric"]["selector"]["matchLabels"]["queue_name"])
        for m in spec["metrics"]
    }
    assert seen == {
        (name, q)
        for name in ("queueworker_queue_oldest_wait_seconds", "celery_queue_length")
        for q in ("a", "b")
    }
    for metric in spec["metrics"]:
        assert metric["type"] == "External"
        target = metric["external"]["target"]
        if metric["external"]["metric"]["name"] == "celery_queue_length":
            assert target == {"type": "AverageValue", "averageValue": "8"}
        else:
            assert target == {"type": "Value", "value": "30"}


def test_hpa_scale_down_delay_within_the_window() -> None:
    qw = make_qw(autoscaling=Autoscaling(mode="hpa", scale_down_delay_seconds=45))
    assert (
        horizontal_pod_autoscaler(qw, SETTINGS)["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"]
        == 45
    )


@pytest.mark.parametrize("mode", ["builtin", "keda", "off"])
def test_queue_names_outside_label_values_are_fine_without_hpa(mode: str) -> None:
    assert problems(make_qw(queues=("a:b",), autoscaling=Autoscaling(mode=mode))) == []


def test_hpa_needs_queue_names_that_are_label_values() -> None:
    found = problems(make_qw(queues=("ok", "a:b", "x" * 64), autoscaling=Autoscaling(mode="hpa")))
    assert [e.path for e in found] == ["spec.queues[1]", "spec.queues[2]"]
    assert all("use autoscaling.mode keda or builtin" in e.message for e in found)
