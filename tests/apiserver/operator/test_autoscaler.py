"""The builtin autoscaler against a real Redis: a backlog raises replicas within one interval, a drained
queue lowers them only after scaleDownDelaySeconds (idle pods marked cheapest to delete first), and an
unreachable broker holds replicas with BrokerReachable=False; the broker's password appears nowhere."""

from __future__ import annotations

import datetime
import json
import logging
import time

import kopf
import pytest
from queueworker.broker import keys
from queueworker.scaling import loop
from queueworker.scaling.policy import Decision, decide
from queueworker_operator import metrics

from tests.support.kubeapi import DEPLOYMENTS, EVENTS, PODS, QW
from tests.support.operator_harness import eventually
from tests.support.operator_helpers import condition, create, events, managers, manifest, status
from tests.support.redis_server import RedisServer

DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"


def push(client, queue: str, count: int, age: float = 5.0) -> None:
    published = time.time() - age
    messages = [
        json.dumps(
            {
                "body": "",
                "headers": {keys.PUBLISHED_HEADER: published, "task": "tasks.add"},
                "properties": {"delivery_tag": str(i)},
            }
        )
        for i in range(count)
    ]
    client.lpush(queue, *messages)


def worker_pod(name: str, instance: str, ns: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": {
                "app.kubernetes.io/name": "queueworker",
                "app.kubernetes.io/instance": instance,
                "app.kubernetes.io/component": "worker",
            },
        },
        "spec": {
            "automountServiceAccountToken": False,
            "containers": [{"name": "worker", "image": "queueworker/worker:0.1.0"}],
        },
    }


def replicas(kube, ns: str, name: str) -> int | None:
    deployment = kube.read(DEPLOYMENTS, ns, f"{name}-worker")
    return None if deployment is None else deployment["spec"].get("replicas")


async def ticks_later(op, count: int) -> None:
    target = op.autoscaler.ticks + count
    await eventually(lambda: op.autoscaler.ticks >= target)


async def test_scale_up_at_once_down_after_delay(kube, ns, start_operator, redis_client, monkeypatch):
    memo = kopf.Memo()
    delay = 3
    decisions: list[tuple[float, Decision]] = []  # (observation time, decision) of every builtin tick

    def recording_decide(config, state, observation, current):
        decision = decide(config, state, observation, current)
        if observation is not None:
            decisions.append((observation.time, decision))
        return decision

    monkeypatch.setattr(loop, "decide", recording_decide)
    async with start_operator(memo=memo):
        create(
            kube,
            manifest(
                "jobs",
                ns,
                concurrency=2,
                autoscaling={
                    "mode": "builtin",
                    "minReplicas": 1,
                    "maxReplicas": 6,
                    "targetWaitSeconds": 10,
                    "scaleDownDelaySeconds": delay,
                },
            ),
        )
        await eventually(lambda: status(kube, ns, "jobs").get("desiredReplicas") == 1)
        op = memo["operator"]
        await eventually(lambda: condition(kube, ns, "jobs", "BrokerReachable").get("status") == "True")
        target = json.loads(redis_client.hget(keys.TARGETS_HASH, "jobs"))
        assert target == {"targetWaitSeconds": 10.0, "queueworker": f"{ns}/jobs"}
        ups = (
            metrics.REGISTRY.get_sample_value(
                "queueworker_scale_events_total",
                {"namespace": ns, "queueworker": "jobs", "direction": "up"},
            )
            or 0
        )

        push(redis_client, "jobs", 20)
        pushed_at = op.autoscaler.ticks  # ticks completed so far; the running one may have probed before
        scaled_at: list[int] = []
        scale = op.cluster.kube.scale

        async def spy(*args, **kwargs):
            scaled_at.append(op.autoscaler.ticks)
            return await scale(*args, **kwargs)

        op.cluster.kube.scale = spy
        await eventually(lambda: (replicas(kube, ns, "jobs") or 0) > 1)
        assert scaled_at[0] - pushed_at <= 1, "desired replicas must rise at the first tick after the push"
        high = replicas(kube, ns, "jobs")
        assert 2 <= high <= 6  # up at once, within maxReplicas (the policy's step bounds the exact value)
        await eventually(lambda: status(kube, ns, "jobs").get("backlog") == 20)
        st = status(kube, ns, "jobs")
        assert st["desiredReplicas"] == high and st["oldestWaitSeconds"] >= 5 and st["lastScaleTime"]
        assert st["lastScaleReason"].startswith("scale up")
        up = await eventually(lambda: events(kube, ns, "jobs", "ScaledUp"))
        assert f"1 -> {high}" in up[0]["message"]
        assert (
            metrics.REGISTRY.get_sample_value(
                "queueworker_scale_events_total",
                {"namespace": ns, "queueworker": "jobs", "direction": "up"},
            )
            == ups + 1
        )

        # five worker pods; the first holds two tasks (the atomic fetch's records), its heartbeat says busy
        for i in range(5):
            kube.create(PODS, worker_pod(f"jobs-worker-p{i}", "jobs", ns))
        redis_client.hset(
            keys.heartbeat_key("jobs"),
            "jobs@jobs-worker-p0",
            json.dumps(
                {
                    "hostname": "jobs@jobs-worker-p0",
                    "pid": 7,
                    "busy": 1,
                    "total": 2,
                    "processed": 3,
                    "ts": time.time(),
                }
            ),
        )
        redis_client.hset(
            keys.HELD_HASH,
            mapping={
                "tag-1": "jobs@jobs-worker-p0\njobs",
                "tag-2": f"jobs@jobs-worker-p0\njobs{keys.PRIORITY_SEP}9",
            },
        )

        redis_client.delete("jobs")
        await eventually(lambda: (replicas(kube, ns, "jobs") or high) < high, timeout=60)
        # Down only after scaleDownDelaySeconds of recommendations below the replicas: recommendations fall
        # as the arrival rate decays, so the delay may start before the drain, never after the last high one.
        down_at = next(t for t, d in decisions if d.direction == "down")
        last_high = max(t for t, d in decisions if t < down_at and d.recommended >= high)
        assert down_at - last_high >= delay, "scaled down before scaleDownDelaySeconds"
        low = replicas(kube, ns, "jobs")
        assert low >= 1  # one task still runs: never below one worker
        down = await eventually(lambda: events(kube, ns, "jobs", "ScaledDown"))
        assert f"{high} -> {low}" in down[0]["message"]
        costs = {
            p["metadata"]["name"]: p["metadata"].get("annotations", {}).get(DELETION_COST)
            for p in kube.live(PODS, ns)
        }
        # the cost follows the tasks held, not the heartbeat's busy slots
        assert costs == {"jobs-worker-p0": "200", **{f"jobs-worker-p{i}": "-100" for i in range(1, 5)}}


@pytest.fixture
def own_redis():
    server = RedisServer(password="pw-Xq8-never-shown").start()
    yield server
    server.stop()


async def test_broker_down_holds_replicas(kube, ns, start_operator, operator_env, own_redis, caplog):
    caplog.set_level(logging.DEBUG)
    operator_env["QUEUEWORKER_REDIS_URL"] = own_redis.url
    memo = kopf.Memo()
    async with start_operator(memo=memo):
        create(
            kube,
            manifest(
                "held",
                ns,
                schedules=[{"name": "n", "task": "t.n", "every": "1m"}],
                autoscaling={"mode": "builtin", "minReplicas": 1, "maxReplicas": 4},
            ),
        )
        op = await eventually(lambda: memo.get("operator"))
        push(own_redis.client(), "held", 10)
        await eventually(lambda: (replicas(kube, ns, "held") or 0) > 1)
        await ticks_later(op, 1)
        before = replicas(kube, ns, "held")

        own_redis.stop()
        broker = await eventually(
            lambda: (
                condition(kube, ns, "held", "BrokerReachable").get("status") == "False"
                and condition(kube, ns, "held", "BrokerReachable")
            )
        )
        assert broker["reason"] == "BrokerUnreachable"
        await ticks_later(op, 3)
        assert replicas(kube, ns, "held") == before
        assert status(kube, ns, "held")["desiredReplicas"] == before

        own_redis.start()
        await eventually(lambda: condition(kube, ns, "held", "BrokerReachable").get("status") == "True")

    secret = own_redis.password
    for record in caplog.records:
        assert secret not in record.getMessage()
    for event in kube.live(EVENTS, ns):
        assert secret not in json.dumps(event)
    assert secret not in json.dumps(kube.read(QW, ns, "held"))


async def test_scale_from_zero_and_never_scale_keda_or_hpa(kube, ns, start_operator, redis_client):
    memo = kopf.Memo()
    async with start_operator(memo=memo):
        create(
            kube, manifest("idle", ns, autoscaling={"mode": "builtin", "minReplicas": 0, "maxReplicas": 3})
        )
        create(kube, manifest("kq", ns, autoscaling={"mode": "keda", "minReplicas": 0, "maxReplicas": 3}))
        create(kube, manifest("hq", ns, autoscaling={"mode": "hpa", "minReplicas": 1, "maxReplicas": 3}))
        await eventually(
            lambda: replicas(kube, ns, "idle") == 0 and status(kube, ns, "idle").get("backlog") == 0
        )
        push(redis_client, "idle", 1)
        push(redis_client, "kq", 50)
        push(redis_client, "hq", 50)
        await eventually(lambda: replicas(kube, ns, "idle") == 1)  # one waiting task is enough to start
        await eventually(
            lambda: (
                status(kube, ns, "kq").get("backlog") == 50 and status(kube, ns, "hq").get("backlog") == 50
            )
        )
        await ticks_later(memo["operator"], 2)
        for name in ("kq", "hq"):
            # created without replicas (the server's default, 1) and never scaled by the operator
            assert replicas(kube, ns, name) == 1, f"{name}: its autoscaler owns replicas"
            assert not events(kube, ns, name, "ScaledUp")
            assert not [m for m in managers(kube.read(DEPLOYMENTS, ns, f"{name}-worker")) if m[2] == "scale"]
        idle = kube.read(DEPLOYMENTS, ns, "idle-worker")
        assert ("queueworker-autoscaler", "Apply", "scale") in managers(idle)


def started_pod(kube, ns: str, name: str, ready_after: float | None) -> None:
    """A worker pod that became Ready `ready_after` seconds after its creation (None: still starting)."""
    pod = kube.create(PODS, worker_pod(name, "slow", ns))
    if ready_after is None:
        return
    created = datetime.datetime.fromisoformat(pod["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
    ready_at = (created + datetime.timedelta(seconds=ready_after)).strftime("%Y-%m-%dT%H:%M:%SZ")
    ready = {"type": "Ready", "status": "True", "lastTransitionTime": ready_at}
    status = {
        "conditions": [ready],
        "containerStatuses": [
            {
                "name": "worker",
                "restartCount": 0,
                "ready": True,
                "image": "queueworker/worker:0.1.0",
                "imageID": "",
                "state": {"running": {"startedAt": ready_at}},
            }
        ],
    }
    kube.patch(PODS, ns, name, {"status": status}, sub="status")


async def test_the_policy_gets_the_start_time_measured_on_the_worker_pods(
    kube, ns, start_operator, monkeypatch
):
    memo = kopf.Memo()
    seen: list[float | None] = []

    def recording_decide(config, state, observation, current):
        if observation is not None:
            seen.append(observation.start_seconds)
        return decide(config, state, observation, current)

    monkeypatch.setattr(loop, "decide", recording_decide)
    async with start_operator(memo=memo):
        spec = {"mode": "builtin", "minReplicas": 1, "maxReplicas": 3}
        create(kube, manifest("slow", ns, autoscaling=spec))
        await eventually(lambda: bool(seen))
        assert seen[-1] is None  # nothing measured yet: the policy's default
        # Pods that became Ready 17 s and 23 s after their creation, and one still starting.
        started_pod(kube, ns, "slow-worker-a", 17)
        started_pod(kube, ns, "slow-worker-b", 23)
        started_pod(kube, ns, "slow-worker-c", None)
        await eventually(lambda: seen[-1] == 20.0)  # the median of the measured starts
