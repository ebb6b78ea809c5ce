"""The spec model: typed values with defaults, and every error at once with its field path and the fix."""

from __future__ import annotations

from typing import Any

import pytest
from queueworker.api.checks import duration_seconds
from queueworker.api.spec import (
    Autoscaling,
    QueueWorker,
    QueueWorkerSpec,
    Shutdown,
    SpecError,
    parse_manifest,
    parse_spec,
)
from queueworker.cron import cron_ok


def manifest(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "queueworker.dev/v1alpha1",
        "kind": "QueueWorker",
        "metadata": {"name": "emails"},
        "spec": {"app": "shop.tasks:app", "queues": ["emails"], **spec},
    }


def errors(obj: Any) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        parse_manifest(obj)
    return {e.path: e.message for e in info.value.errors}


def spec_errors(**spec: Any) -> dict[str, str]:
    return errors(manifest(**spec))


def test_minimal_manifest_gets_every_default() -> None:
    qw = parse_manifest(manifest())
    assert qw == QueueWorker(
        name="emails",
        namespace="default",
        spec=QueueWorkerSpec(app="shop.tasks:app", queues=("emails",)),
    )
    assert qw.spec.autoscaling == Autoscaling("builtin", 1, 10, 30.0, 300)
    assert qw.spec.shutdown == Shutdown(300)
    assert qw.spec.concurrency == 2 and qw.spec.pool == "prefork" and qw.spec.prefetch_multiplier == 1


def test_metadata_is_copied_and_namespace_defaults() -> None:
    obj = manifest()
    obj["metadata"] = {"name": "emails", "uid": "u-1", "generation": 4, "labels": {"team": "shop"}}
    qw = parse_manifest(obj, default_namespace="shop")
    assert (qw.namespace, qw.uid, qw.generation, dict(qw.labels)) == ("shop", "u-1", 4, {"team": "shop"})
    obj["metadata"]["namespace"] = "prod"
    assert parse_manifest(obj, default_namespace="shop").namespace == "prod"


def test_full_spec_is_typed() -> None:
    qw = parse_manifest(
        manifest(
            queues=["emails", "bulk"],
            concurrency=8.0,
            autoscaling={"mode": "keda", "minReplicas": 0, "targetWaitSeconds": 5},
            resources={"limits": {"cpu": "1", "memory": "1Gi"}},
            env=[{"name": "A", "value": "b"}],
            schedules=[
                {"name": "digest", "task": "t.digest", "cron": "0 7 * * *"},
                {"name": "retry", "task": "t.retry", "every": "1h30m", "queue": "bulk", "args": [1],
                 "kwargs": {"x": None}, "enabled": False},
            ],
        )
    )  # fmt: skip
    spec = qw.spec
    assert spec.concurrency == 8 and isinstance(spec.concurrency, int)
    assert spec.autoscaling == Autoscaling("keda", 0, 10, 5.0, 300)
    assert spec.resources == {"limits": {"cpu": "1", "memory": "1Gi"}}
    digest, retry = spec.schedules
    assert (digest.cron, digest.every, digest.queue, digest.enabled) == ("0 7 * * *", None, "emails", True)
    assert (retry.cron, retry.every, retry.queue, retry.enabled) == (None, 5400.0, "bulk", False)
    assert retry.args == (1,) and retry.kwargs == {"x": None}


def test_every_error_at_once_with_paths() -> None:
    found = spec_errors(
        concurrency=0,
        pool="fork",
        autoscaling={"minReplicas": 5, "maxReplicas": 2},
        schedules=[
            {"name": "a", "task": "t", "cron": "61 * * * *"},
            {"name": "a", "task": "t", "every": "0s"},
        ],
    )
    assert set(found) == {
        "spec.concurrency",
        "spec.pool",
        "spec.autoscaling.minReplicas",
        "spec.schedules[0].cron",
        "spec.schedules[1].name",
        "spec.schedules[1].every",
    }
    assert found["spec.autoscaling.minReplicas"] == "must be <= maxReplicas (5 > 2)"
    assert "between 1 and 1024" in found["spec.concurrency"]
    assert "did you mean 'prefork'?" in found["spec.pool"]
    assert "greater than zero" in found["spec.schedules[1].every"]


def test_unknown_fields_suggest_near_misses() -> None:
    assert spec_errors(concurency=3) == {"spec.concurency": "unknown field; did you mean 'concurrency'?"}
    assert (
        "did you mean 'minReplicas'"
        in spec_errors(autoscaling={"minreplicas": 1})["spec.autoscaling.minreplicas"]
    )
    far = spec_errors(colour="blue")["spec.colour"]
    assert far.startswith("unknown field (allowed: app, image, queues")
    assert (
        "did you mean 'cron'"
        in spec_errors(schedules=[{"name": "a", "task": "t", "crn": "* * * * *"}])["spec.schedules[0].crn"]
    )


@pytest.mark.parametrize("value", [True, "2", 2.5, None, [2], {"n": 2}])
def test_integers_reject_other_types(value: Any) -> None:
    if value is None:  # null is absent: the default applies
        assert parse_manifest(manifest(concurrency=None)).spec.concurrency == 2
        return
    assert "must be an integer" in spec_errors(concurrency=value)["spec.concurrency"]


@pytest.mark.parametrize("value", [None, [], "x", 3, ["a"]])
def test_wrong_shapes_never_crash(value: Any) -> None:
    for field in ("autoscaling", "shutdown", "resources", "env", "nodeSelector", "tolerations", "affinity",
                  "schedules", "routes", "queues"):  # fmt: skip
        obj = manifest(**{field: value})
        try:
            parse_manifest(obj)
        except SpecError as exc:
            assert all(e.path.startswith("spec.") for e in exc.errors)


@pytest.mark.parametrize("obj", [None, [], "QueueWorker", 3, {"spec": []}, {"metadata": "x"}])
def test_not_an_object(obj: Any) -> None:
    with pytest.raises(SpecError) as info:
        parse_manifest(obj)
    assert info.value.errors
    assert all(
        e.path.split(".")[0].split("[")[0] in {"kind", "apiVersion", "metadata", "spec"}
        for e in info.value.errors
    )


def test_metadata_rules() -> None:
    obj = manifest()
    obj["metadata"] = {"name": "Emails_1", "namespace": "a.b"}
    found = errors(obj)
    assert set(found) == {"metadata.name", "metadata.namespace"}
    assert "DNS subdomain" in found["metadata.name"] and "DNS label" in found["metadata.namespace"]
    obj["metadata"] = {"name": "x" * 254}
    assert errors(obj)["metadata.name"].startswith("must be at most 253 characters, got 254: expected a DNS")
    del obj["metadata"]
    assert errors(obj) == {"metadata.name": errors({**obj, "metadata": {}})["metadata.name"]}


def test_api_version_and_kind() -> None:
    obj = manifest()
    obj["apiVersion"], obj["kind"] = "queueworker.dev/v1", "Deployment"
    assert errors(obj) == {
        "apiVersion": "must be queueworker.dev/v1alpha1, got string 'queueworker.dev/v1'",
        "kind": "must be QueueWorker, got string 'Deployment'",
    }


def test_parse_spec_alone() -> None:
    assert parse_spec({"app": "tasks", "queues": ["q"]}).queues == ("q",)
    with pytest.raises(SpecError) as info:
        parse_spec({"queues": []})
    assert {e.path for e in info.value.errors} == {"spec.app", "spec.queues"}
    with pytest.raises(SpecError):
        parse_spec(None)  # type: ignore[arg-type]


def test_autoscaling_rules() -> None:
    assert (
        "HorizontalPodAutoscaler"
        in spec_errors(autoscaling={"mode": "hpa", "minReplicas": 0})["spec.autoscaling.minReplicas"]
    )
    assert spec_errors(autoscaling={"minReplicas": 11}) == {
        "spec.autoscaling.minReplicas": "must be <= maxReplicas (11 > 10)"
    }
    assert "> 0" in spec_errors(autoscaling={"targetWaitSeconds": 0})["spec.autoscaling.targetWaitSeconds"]
    assert spec_errors(autoscaling={"mode": False}) == {
        "spec.autoscaling.mode": "must be one of builtin, keda, hpa, off; got boolean false; "
        'quote it in YAML: "off"'
    }


def test_schedule_rules() -> None:
    both = spec_errors(schedules=[{"name": "a", "task": "t", "cron": "* * * * *", "every": "1m"}])
    assert "exactly one of cron" in both["spec.schedules[0]"]
    queue = spec_errors(schedules=[{"name": "a", "task": "t", "every": "1m", "queue": "other"}])
    assert queue == {"spec.schedules[0].queue": "must be one of spec.queues (emails); got 'other'"}
    assert (
        "JSON"
        in spec_errors(schedules=[{"name": "a", "task": "t", "every": "1m", "args": [float("nan")]}])[
            "spec.schedules[0].args"
        ]
    )


def test_duplicates_name_their_index() -> None:
    found = spec_errors(queues=["a", "b", "a"], env=[{"name": "X"}, {"name": "X"}], routes=["r", "r"])
    assert set(found) == {"spec.queues[2]", "spec.env[1].name", "spec.routes[1]"}


def test_pod_fields() -> None:
    found = spec_errors(
        resources={"limits": {"memory": "1 GB"}, "requests": {"cpu": -1}},
        env=[{"name": "A", "value": "x", "valueFrom": {"secretKeyRef": {"key": "k"}}},
             {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "a"}, "secretKeyRef": {"key": "k"}}}],
        tolerations=[{"operator": "Equal"}, {"key": "k", "operator": "Exists", "value": "v"},
                     {"key": "k", "effect": "NoSchedule", "tolerationSeconds": 1}],
        nodeSelector={"disk": 1},
        affinity={"podAntiAffinity": "spread"},
    )  # fmt: skip
    assert set(found) == {
        "spec.resources.limits[memory]",
        "spec.resources.requests[cpu]",
        "spec.env[0]",
        "spec.env[1].valueFrom",
        "spec.tolerations[0].operator",
        "spec.tolerations[1].value",
        "spec.tolerations[2].tolerationSeconds",
        "spec.nodeSelector[disk]",
        "spec.affinity.podAntiAffinity",
    }


@pytest.mark.parametrize(
    ("expr", "ok"),
    [("0 7 * * *", True), ("*/15 0-23/2 1,15 jan-jun MON-FRI", True), ("0 0 * * 7", True),
     ("0 7 * *", False), ("0 0 7 * * *", False), ("60 * * * *", False), ("* * 32 * *", False),
     ("@daily", False), ("*/0 * * * *", False), ("* * * * 8", False), ("0 7 * * * ", False)],
)  # fmt: skip
def test_cron(expr: str, ok: bool) -> None:
    assert cron_ok(expr) is ok


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30.0), ("5m", 300.0), ("1h", 3600.0), ("1h30m", 5400.0), ("1d", 86400.0), ("0s", 0.0),
     ("", None), ("30", None), ("1m30", None), ("30s1m", None), ("1.5h", None)],
)  # fmt: skip
def test_durations(text: str, seconds: float | None) -> None:
    assert duration_seconds(text) == seconds


def test_error_text() -> None:
    with pytest.raises(SpecError) as info:
        parse_manifest(manifest(concurrency=0, pool="x"))
    text = str(info.value)
    assert "spec.concurrency: must be an integer between 1 and 1024, got 0" in text
    assert str(info.value.errors[0]).startswith("spec.concurrency: ")


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("0 7 * *", "must have five fields (minute hour day-of-month month day-of-week), got 4"),
        ("60 7 * * *", "minute field '60' is not valid: use 0-59"),
        ("0 24 * * *", "hour field '24' is not valid: use 0-23"),
        ("0 7 32 * *", "day of month field '32' is not valid: use 1-31"),
        ("0 7 * 13 *", "month field '13' is not valid: use 1-12 or jan-dec"),
        ("0 7 * * funday", "day of week field 'funday' is not valid: use 0-7 or sun-sat"),
        ("0\t7 * * *", "must be five fields separated by spaces"),
        ("0 0 30 2 *", "never fires"),
    ],
)
def test_cron_messages_name_the_field(expr: str, message: str) -> None:
    found = spec_errors(schedules=[{"name": "a", "task": "t", "cron": expr}])["spec.schedules[0].cron"]
    assert found.startswith(message), found
    assert f"got {expr!r}" in found


def test_required_fields_say_what_they_need() -> None:
    obj = manifest()
    obj["spec"] = {"schedules": [{}], "env": [{}]}
    found = errors(obj)
    assert found["spec.app"] == "required: the Celery app `celery -A` gets, e.g. shop.tasks:app"
    assert found["spec.queues"].startswith("required: the queues")
    assert found["spec.schedules[0].name"].startswith("required: a DNS label")
    assert found["spec.schedules[0].task"].startswith("required: the Celery task name")
    assert found["spec.env[0].name"].startswith("required: an environment variable name")
    assert found["spec.schedules[0]"].startswith("set exactly one of cron")


def test_deep_nesting_is_a_spec_error() -> None:
    deep: Any = []
    for _ in range(5000):
        deep = [deep]
    args = {"schedules": [{"name": "a", "task": "t", "every": "1m", "args": deep}]}
    with pytest.raises(SpecError) as info:
        parse_spec({"app": "a", "queues": ["q"], **args})
    assert info.value.errors[0].path == "spec"
    assert "nested too deeply" in errors(manifest(**args))["spec"]


def test_huge_integers_are_described_not_printed() -> None:
    found = spec_errors(replicas=10**5000)
    assert found == {"spec.replicas": "must be an integer >= 0, got a 16610-bit number"}


def test_unknown_field_names_with_control_characters_are_shown_escaped() -> None:
    from queueworker.api.spec import SpecError, parse_manifest

    doc = {
        "apiVersion": "queueworker.dev/v1alpha1",
        "kind": "QueueWorker",
        "metadata": {"name": "a"},
        "spec": {"app": "a:app", "queues": ["q"], "x\x1b[31m\n": 1},
    }
    try:
        parse_manifest(doc)
    except SpecError as exc:
        (error,) = exc.errors
        assert error.path == 'spec."x\\u001b[31m\\n"' and "\x1b" not in str(exc)
    else:
        raise AssertionError("an unknown field was accepted")
