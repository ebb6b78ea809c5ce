"""Local mode writes the beat entries of the QueueWorkers it runs and removes the stale ones of their
namespaces, as it does with the wait targets; another namespace's entries (in a Redis shared with a
cluster, the operator's) stay. Before, `qw up` made the whole `qw/` prefix its own: started beside an
operator on one Redis, it deleted the operator's entries until the operator's next drift check."""

from __future__ import annotations

from typing import Any

import redis
from queueworker.api.spec import parse_manifest
from queueworker.beat.schedules import BeatEntry, owner_prefix, sync_schedules
from queueworker.local.runner import sync_beat

PREFIX = "redbeat:"


def queueworker(name: str, namespace: str, schedules: list[dict[str, Any]]) -> Any:
    return parse_manifest(
        {
            "apiVersion": "queueworker.dev/v1alpha1",
            "kind": "QueueWorker",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"app": "tasks:app", "queues": [name], "schedules": schedules},
        }
    )


def entries(client: redis.Redis) -> set[str]:
    return {key.decode()[len(PREFIX) :] for key in client.scan_iter(match=f"{PREFIX}qw/*")}


def test_local_mode_owns_only_its_namespaces_entries(redis_url: str, redis_client: redis.Redis) -> None:
    # The operator's entry in a namespace of its own, and an entry an earlier local run left in `default`.
    operator_entry = BeatEntry(
        name="qw/team/report/nightly", task="t.report", schedule="0 2 * * *", queue="report"
    )
    sync_schedules(redis_url, owner_prefix("team"), [operator_entry])
    stale = BeatEntry(name="qw/default/gone/tick", task="t.gone", schedule=5.0, queue="gone")
    sync_schedules(redis_url, owner_prefix("default"), [stale])
    assert entries(redis_client) == {"qw/team/report/nightly", "qw/default/gone/tick"}

    qws = [
        queueworker("emails", "default", [{"name": "digest", "task": "t.digest", "every": "30s"}]),
        queueworker("bulk", "shop", [{"name": "sweep", "task": "t.sweep", "cron": "*/5 * * * *"}]),
    ]
    assert sync_beat(redis_url, qws) == 2
    assert entries(redis_client) == {
        "qw/default/emails/digest",
        "qw/shop/bulk/sweep",
        "qw/team/report/nightly",
    }
