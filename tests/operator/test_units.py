"""The operator's pure parts: apply diffing, status merging, probe aggregation, redaction."""

from __future__ import annotations

from queueworker.api.spec import parse_manifest
from queueworker.broker.stats import QueueStats
from queueworker_operator.autoscaler import hostname_of, observation
from queueworker_operator.kube import _last_applied, _with_last_applied, contains, merge_patch
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


def test_merge_patch_is_three_way():
    last = {"metadata": {"labels": {"a": "1", "gone": "x"}}, "spec": {"nodeSelector": {"k": "v"}, "n": 1}}
    desired = {"metadata": {"labels": {"a": "1"}}, "spec": {"n": 2}}
    live = {
        "metadata": {"labels": {"a": "1", "gone": "x", "theirs": "y"}, "uid": "u"},
        "spec": {"nodeSelector": {"k": "v"}, "n": 1, "defaulted": True},
    }
    assert merge_patch(last, desired, live) == {
        "metadata": {"labels": {"gone": None}},
        "spec": {"nodeSelector": None, "n": 2},
    }
    assert merge_patch(desired, desired, {**live, "metadata": {"labels": {"a": "1"}}, "spec": {"n": 2}}) == {}


def test_last_applied_round_trip_excludes_replicas():
    obj = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}, "spec": {"replicas": 4}}
    annotated = _with_last_applied(obj)
    assert _last_applied(annotated) == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {},
    }
    assert annotated["spec"]["replicas"] == 4


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
