"""`make bench-cluster`'s pure parts: every object it applies passes the strict validation of what the project
emits (the KEDA kinds against KEDA's published CRDs), the KEDA baselines are configured as documented, and
the figures are computed as documented."""

from __future__ import annotations

import json

import pytest
from queueworker.api.spec import parse_manifest
from queueworker.builders.worker import worker_deployment
from queueworker.settings import Settings

from bench.cluster import measure, policies, replay, trace
from bench.cluster.policies import POLICIES
from tests.support.validate import validate_object

NS = "queueworker-system"
URL = "rediss://:s3cret@queueworker-redis.queueworker-system.svc:6379/0?ssl_ca_certs=/etc/ca.crt"
K8S = "1.28.0"


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_every_object_of_every_policy_is_valid(name: str) -> None:
    policy = POLICIES[name]
    manifest = policies.queueworker(policy, NS)
    qw = parse_manifest(manifest)
    assert qw.spec.autoscaling.mode == policy.mode
    objects = []
    if policy.keda:
        rendered = worker_deployment(qw, Settings())
        copy = policies.scaled_copy(rendered, policy)
        assert copy["spec"]["selector"]["matchLabels"][policies.INSTANCE] == policy.instance
        assert "ownerReferences" not in copy["metadata"]
        labels = copy["spec"]["template"]["metadata"]["labels"]
        assert all(labels[k] == v for k, v in copy["spec"]["selector"]["matchLabels"].items())
        objects += [copy, policies.scaled_object(policy, NS, URL), *policies.keda_auth(NS, URL, "CA")]
        objects.append(policies.keda_network_policy(NS, {"app.kubernetes.io/component": "redis"}))
    for obj in objects:
        validate_object(obj, K8S)


def test_the_keda_baselines_are_configured_as_documented() -> None:
    default = policies.scaled_object(POLICIES["keda"], NS, URL)["spec"]
    tuned = policies.scaled_object(POLICIES["keda-tuned"], NS, URL)["spec"]
    assert "pollingInterval" not in default and "cooldownPeriod" not in default and "advanced" not in default
    assert default["triggers"][0]["metadata"] == {
        "address": "queueworker-redis.queueworker-system.svc:6379",
        "listName": "bench_keda",
        "listLength": "5",
    }
    assert (tuned["pollingInterval"], tuned["cooldownPeriod"]) == (5, 60)
    assert tuned["triggers"][0]["metadata"]["listLength"] == "6"  # 2 slots x 30 s / 10 s tasks
    behavior = tuned["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 60
    assert behavior["scaleUp"]["stabilizationWindowSeconds"] == 0
    secret, auth = policies.keda_auth(NS, URL, "CA")
    assert secret["stringData"] == {"password": "s3cret", "tls": "enable", "ca": "CA"}
    assert [r["parameter"] for r in auth["spec"]["secretTargetRef"]] == ["password", "tls", "ca"]
    plain = policies.keda_auth(NS, "redis://:pw@redis:6379/0", "")[1]
    assert [r["parameter"] for r in plain["spec"]["secretTargetRef"]] == ["password"]


def test_builtin_60_is_the_queueworker_with_a_60_s_delay() -> None:
    spec = policies.queueworker(POLICIES["builtin-60"], NS)["spec"]
    assert spec["autoscaling"]["scaleDownDelaySeconds"] == 60
    default = policies.queueworker(POLICIES["builtin"], NS)["spec"]
    assert default["autoscaling"]["scaleDownDelaySeconds"] == 300


def test_worker_seconds_integrate_the_pods_alive_over_the_window() -> None:
    samples = [(10.0, 1, 1), (11.0, 3, 3), (13.0, 2, 2), (20.0, 5, 5)]
    # [10, 11): 1 pod, [11, 13): 3, [13, 15]: 2 -> 1 + 6 + 4; before the first sample counts as it
    assert measure.worker_seconds(samples, 9.0, 15.0) == pytest.approx(1 * 1 + 1 + 6 + 4)


def test_back_at_min_is_when_the_replicas_reach_it_for_good() -> None:
    samples = [(0.0, 3, 3), (5.0, 1, 1), (6.0, 2, 2), (8.0, 1, 1), (9.0, 1, 1)]
    assert measure.back_at_min(samples, 2.0, 1) == 6.0
    assert measure.back_at_min(samples[:3], 2.0, 1) is None


def test_waits_are_start_less_publish() -> None:
    records = [
        json.dumps({"published": 100.0, "started": 103.5, "finished": 110.0}),
        json.dumps({"published": None, "started": 1.0, "finished": 2.0}),  # unstamped: not counted
        json.dumps({"published": 200.0, "started": 199.9, "finished": 205.0}),  # clock skew: 0
    ]
    assert measure.waits(records).tolist() == [3.5, 0.0]
    assert measure.waits(records, since=150.0).tolist() == [0.0], "an earlier run's task is not counted"


def test_the_trace_is_the_simulations_burst_once_and_seeded() -> None:
    a, b = trace.sample(1), trace.sample(1)
    assert (a.arrival == b.arrival).all() and (a.service == b.service).all()
    during = ((a.arrival >= trace.BURST_START) & (a.arrival < a.burst_end)).sum()
    assert 180 < during < 320  # 1.4 task/s for 180 s
    assert abs(a.service.mean() - 10.0) < 2.5


def test_the_replay_models_mode_hpa_scaling_up_on_wait_and_holding_for_the_delay() -> None:
    sample = trace.sample(1)
    hpa = replay.simulate("hpa", sample, trace.DURATION, 12.0)
    keda = replay.simulate("keda", sample, trace.DURATION, 12.0)
    assert hpa.p95_wait > 0 and hpa.worker_seconds > trace.DURATION  # more than the one minimum pod
    assert keda.worker_seconds > trace.DURATION
    assert replay.off_by(11.0, 10.0) == pytest.approx(0.1)
