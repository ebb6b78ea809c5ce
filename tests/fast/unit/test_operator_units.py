"""The operator's pure parts: drift comparison, managed fields, status merging, the autoscaler's reading of
queue stats, and the per-QueueWorker metric series."""

from __future__ import annotations

from queueworker.api.spec import parse_manifest
from queueworker.broker.stats import QueueStats
from queueworker_operator import metrics
from queueworker_operator.autoscaler import hostname_of, observation
from queueworker_operator.fields import (
    contains,
    legacy,
    needs_replicas_claim,
    owners,
    slim,
    upgraded_entries,
    without_replicas,
)
from queueworker_operator.status import Cond, merge_conditions, merged_status, status_patch


def test_contains_ignores_server_defaults_but_not_changes():
    live = {
        "spec": {
            "replicas": 3,
            "template": {
                "spec": {"containers": [{"name": "w", "image": "a", "terminationMessagePath": "/dev/x"}]}
            },
        }
    }
    assert contains(live, {"spec": {"template": {"spec": {"containers": [{"name": "w", "image": "a"}]}}}})
    assert not contains(live, {"spec": {"template": {"spec": {"containers": [{"name": "w", "image": "b"}]}}}})
    assert not contains(live, {"spec": {"template": {"spec": {"containers": []}}}})
    assert not contains({"a": 1}, {"a": True}) and contains({"a": 1}, {"a": 1.0})


OLD_UPDATE = {
    "manager": "queueworker-operator",
    "operation": "Update",
    "apiVersion": "apps/v1",
    "fieldsType": "FieldsV1",
    "fieldsV1": {
        "f:metadata": {"f:annotations": {"f:queueworker.dev/last-applied": {}}},
        "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:nodeSelector": {}}}},
    },
}


def test_a_pre_apply_object_is_upgraded_to_the_apply_entry():
    scale = {"manager": "kube-controller-manager", "operation": "Update", "subresource": "scale"}
    scale["fieldsV1"] = {"f:spec": {"f:replicas": {}}}
    applied = {
        "manager": "queueworker-operator",
        "operation": "Apply",
        "fieldsV1": {"f:spec": {"f:template": {"f:spec": {"f:containers": {}}}}},
    }
    obj = {"metadata": {"managedFields": [OLD_UPDATE, scale, applied]}}
    assert legacy(obj) and needs_replicas_claim(obj)
    entries = upgraded_entries(obj)
    assert [(e["manager"], e["operation"]) for e in entries] == [
        ("kube-controller-manager", "Update"),
        ("queueworker-operator", "Apply"),
    ]
    assert entries[1]["fieldsV1"] == {
        "f:metadata": {"f:annotations": {"f:queueworker.dev/last-applied": {}}},
        "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {}, "f:nodeSelector": {}}}},
    }
    upgraded = {"metadata": {"managedFields": entries}}
    assert not legacy(upgraded)
    # without an Apply entry yet, the Update entry becomes one in its place
    alone = upgraded_entries({"metadata": {"managedFields": [OLD_UPDATE]}})
    assert alone == [{**OLD_UPDATE, "operation": "Apply"}]


def test_replicas_are_claimed_only_from_the_operator():
    mine = {
        "manager": "queueworker-operator",
        "operation": "Apply",
        "fieldsV1": {"f:spec": {"f:replicas": {}}},
    }
    theirs = {"manager": "queueworker-autoscaler", "operation": "Apply", "subresource": "scale"}
    theirs["fieldsV1"] = {"f:spec": {"f:replicas": {}}}
    assert needs_replicas_claim({"metadata": {"managedFields": [mine]}})
    assert not needs_replicas_claim({"metadata": {"managedFields": [mine, theirs]}})
    assert not needs_replicas_claim({"metadata": {"managedFields": [theirs]}})
    assert owners({"metadata": {"managedFields": [mine, theirs]}}) == {
        "queueworker-operator",
        "queueworker-autoscaler",
    }


def test_the_cache_keeps_what_drift_checks_read():
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "w", "namespace": "n", "managedFields": [OLD_UPDATE], "resourceVersion": "7"},
        "spec": {"replicas": 2},
        "status": {"replicas": 2},
    }
    small = slim(body)
    assert "status" not in small and small["spec"] == {"replicas": 2}
    assert small["metadata"]["managedFields"] == [
        {"manager": "queueworker-operator", "operation": "Update", "fieldsV1": {"f:spec": {"f:replicas": {}}}}
    ]
    assert legacy(small) and needs_replicas_claim(small)
    assert without_replicas(body)["spec"] == {} and body["spec"] == {"replicas": 2}


def test_conditions_keep_transition_time_and_generation():
    old = merge_conditions(None, {"Ready": Cond(False, "WorkersNotReady", "0/1")}, "T1", 3)
    same = merge_conditions(old, {"Ready": Cond(False, "WorkersNotReady", "0/2")}, "T2", None)
    assert same[0]["lastTransitionTime"] == "T1" and same[0]["observedGeneration"] == 3
    flipped = merge_conditions(same, {"Ready": Cond(True, "WorkersReady", "1/1")}, "T3", 4)
    assert flipped[0]["lastTransitionTime"] == "T3" and flipped[0]["status"] == "True"
    ordered = merge_conditions(
        None, {"BrokerReachable": Cond(True, "B", ""), "Ready": Cond(True, "R", "")}, "T", None
    )
    assert [c["type"] for c in ordered] == ["Ready", "BrokerReachable"]


def test_status_patch_only_changes():
    old = {"backlog": 3, "oldestWaitSeconds": 5, "replicas": 1}
    new = merged_status(old, {"backlog": 0, "oldestWaitSeconds": None}, {}, "T")
    assert status_patch(old, new) == {"backlog": 0, "oldestWaitSeconds": None}
    assert status_patch(new, merged_status(new, {"backlog": 0}, {}, "T")) == {}


def _stats(queue, depth, wait, busy=0, total=0):
    return QueueStats(
        queue=queue,
        depth=depth,
        depths=(depth, 0, 0, 0),
        reserved=1,
        oldest_wait=wait,
        workers=1,
        busy_slots=busy,
        total_slots=total,
        completed_total=10,
        target_wait=None,
        orphaned=False,
    )


def test_observation_sums_queues_and_targets_name_the_owner():
    qw = parse_manifest(
        {
            "apiVersion": "queueworker.dev/v1alpha1",
            "kind": "QueueWorker",
            "metadata": {"name": "mail", "namespace": "shop"},
            "spec": {"app": "a:app", "queues": ["q1", "q2"], "autoscaling": {"targetWaitSeconds": 12}},
        }
    )
    obs = observation(qw, {"q1": _stats("q1", 4, 2.0, 1, 2), "q2": _stats("q2", 6, None)}, now=100.0)
    assert (
        obs.backlog,
        obs.reserved,
        obs.busy_slots,
        obs.total_slots,
        obs.oldest_wait,
        obs.completed_total,
    ) == (10, 2, 1, 2, 2.0, 20)
    assert hostname_of("mail@mail-worker-5d9c-x2") == "mail-worker-5d9c-x2"


def test_a_worker_consuming_two_queues_is_counted_once():
    """Each worker writes one heartbeat per queue it consumes: slots must not double with the queue count."""
    qw = parse_manifest(
        {
            "apiVersion": "queueworker.dev/v1alpha1",
            "kind": "QueueWorker",
            "metadata": {"name": "mail"},
            "spec": {"app": "a:app", "queues": ["q1", "q2"]},
        }
    )
    stats = {"q1": _stats("q1", 3, 1.0, busy=2, total=4), "q2": _stats("q2", 5, 4.0, busy=2, total=4)}
    obs = observation(qw, stats, now=5.0)
    assert (obs.backlog, obs.busy_slots, obs.total_slots, obs.workers, obs.oldest_wait) == (8, 2, 4, 1, 4.0)


def series_of(namespace: str, name: str) -> list[str]:
    return [
        sample.name
        for family in metrics.REGISTRY.collect()
        for sample in family.samples
        if sample.labels.get("namespace") == namespace and sample.labels.get("queueworker") == name
    ]


def test_a_deleted_queueworkers_series_are_dropped():
    metrics.REPLICAS_DESIRED.labels("forget-ns", "gone").set(3)
    metrics.REPLICAS_READY.labels("forget-ns", "gone").set(2)
    metrics.SCALE_EVENTS.labels("forget-ns", "gone", "up").inc()
    metrics.REPLICAS_DESIRED.labels("forget-ns", "kept").set(1)
    assert len(series_of("forget-ns", "gone")) >= 3
    metrics.forget("forget-ns", "gone")
    metrics.forget("forget-ns", "never-seen")  # nothing to drop: no error
    assert series_of("forget-ns", "gone") == []
    assert series_of("forget-ns", "kept") == ["queueworker_replicas_desired"]
    metrics.forget("forget-ns", "kept")
