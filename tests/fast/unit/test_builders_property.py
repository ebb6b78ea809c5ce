"""Property: for any manifest the spec model accepts, every object the builders emit is one an API
server accepts (strict schemas; KEDA's CRD), with names and label values within limits and selectors
that match the pods."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from queueworker.api.spec import SpecError, parse_manifest
from queueworker.builders import problems, render
from queueworker.settings import Settings

from tests.support.validate import validate_object

DNS_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
names = st.one_of(
    st.from_regex(rf"\A{DNS_LABEL}(\.{DNS_LABEL}){{0,3}}\Z").filter(lambda s: len(s) <= 253),
    st.integers(1, 253).map(lambda n: ("q" * n)[:n]),
    st.just(".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])),
)
queues = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.:-]{0,90}\Z")
env_names = st.from_regex(r"\A[A-Z_][A-Z0-9_]{0,20}\Z")
schedules = st.lists(
    st.fixed_dictionaries(
        {"task": st.sampled_from(["tasks.add", "shop.tasks.x"])},
        optional={
            "args": st.lists(st.integers(-5, 5), max_size=3),
            "enabled": st.booleans(),
        },
    ).flatmap(
        lambda d: st.one_of(
            st.sampled_from(["30s", "5m", "1h30m", "2h"]).map(lambda e: {**d, "every": e}),
            st.sampled_from(["*/5 * * * *", "0 7 * * 1-5"]).map(lambda c: {**d, "cron": c}),
        )
    ),
    max_size=3,
)


@st.composite
def manifests(draw: st.DrawFn) -> dict[str, Any]:
    mode = draw(st.sampled_from(["builtin", "keda", "hpa", "off"]))
    qs = draw(st.lists(queues, min_size=1, max_size=draw(st.sampled_from([3, 32])), unique=True))
    minimum = draw(st.integers(1 if mode == "hpa" else 0, 20))
    spec: dict[str, Any] = {
        "app": draw(st.sampled_from(["tasks:app", "shop.tasks", "a.b.c:make_app"])),
        "queues": qs,
        "concurrency": draw(st.integers(1, 1024)),
        "pool": draw(st.sampled_from(["prefork", "threads", "solo", "gevent", "eventlet"])),
        "prefetchMultiplier": draw(st.integers(0, 128)),
        "maxTasksPerChild": draw(st.integers(0, 10_000)),
        "replicas": draw(st.integers(0, 100)),
        "autoscaling": {
            "mode": mode,
            "minReplicas": minimum,
            "maxReplicas": minimum + draw(st.integers(1, 50)),
            "targetWaitSeconds": draw(st.sampled_from([0.25, 1, 2.5, 30, 86400])),
            "scaleDownDelaySeconds": draw(st.integers(0, 86_400)),
        },
        "shutdown": {"gracePeriodSeconds": draw(st.integers(1, 86400))},
        "routes": draw(
            st.lists(st.sampled_from(["tasks.*", "tasks.add", "shop.*.email"]), max_size=3, unique=True)
        ),
    }
    env = draw(st.lists(env_names, max_size=4, unique=True))
    if env:
        spec["env"] = [{"name": n, "value": "v"} for n in env]
    if draw(st.booleans()):
        spec["resources"] = {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "1Gi"}}
        spec["tolerations"] = [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}]
        spec["nodeSelector"] = {"kubernetes.io/os": "linux"}
        spec["serviceAccountName"] = "worker"
    drawn = draw(schedules)
    if drawn:
        spec["schedules"] = [{"name": f"s{i}", **s} for i, s in enumerate(drawn)]
    metadata: dict[str, Any] = {"name": draw(names), "namespace": draw(st.from_regex(rf"\A{DNS_LABEL}\Z"))}
    if draw(st.booleans()):
        metadata["uid"] = "0b3c2f6e-1d2a-4c1b-9e55-3c2d1f0a9b8c"
    return {
        "apiVersion": "queueworker.dev/v1alpha1",
        "kind": "QueueWorker",
        "metadata": metadata,
        "spec": spec,
    }


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(manifests())
def test_any_valid_manifest_builds_valid_objects(manifest: dict[str, Any]) -> None:
    try:
        qw = parse_manifest(manifest)
    except SpecError as exc:  # the generator stays inside the API; say which rule it broke
        raise AssertionError(f"generator produced an invalid manifest: {exc}") from exc
    assume(not problems(qw))
    objects = render([qw], Settings())
    for obj in objects:
        validate_object(obj, "1.28.0")
        assert len(obj["metadata"]["name"]) <= 63
    for deploy in (o for o in objects if o["kind"] == "Deployment"):
        selector = deploy["spec"]["selector"]["matchLabels"]
        assert selector.items() <= deploy["spec"]["template"]["metadata"]["labels"].items()
