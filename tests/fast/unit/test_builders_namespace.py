"""Per-namespace objects (routes ConfigMap, beat Deployment), the routes document and the Celery
task_routes read back from it, and the order of render()."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from celery import Celery
from queueworker.api.routes import RoutesFileError, routes_document, task_routes_from_file
from queueworker.api.spec import Schedule
from queueworker.builders import beat_deployment, render, routes_configmap
from queueworker.builders.common import CHECKSUM_ANNOTATION
from queueworker.settings import Settings

from tests.fast.unit.test_builders import corpus, make_qw

SETTINGS = Settings()


def routed() -> list:
    return [
        make_qw("zeta", queues=("z",), routes=("tasks.*",), uid="uz"),
        make_qw("alpha", queues=("a1", "a2"), routes=("tasks.taskA", "tasks.a.*"), uid="ua"),
        make_qw("mid", queues=("m",), uid="um"),
    ]


def test_routes_document_order_and_format() -> None:
    assert routes_document(routed()) == {
        "version": 1,
        "routes": [
            {"pattern": "tasks.taskA", "queue": "a1", "queueworker": "shop/alpha"},
            {"pattern": "tasks.a.*", "queue": "a1", "queueworker": "shop/alpha"},
            {"pattern": "tasks.*", "queue": "z", "queueworker": "shop/zeta"},
        ],
    }
    assert routes_document([]) == {"version": 1, "routes": []}


def test_routes_configmap_holds_the_document_and_is_owned_by_all() -> None:
    cm = routes_configmap(routed(), SETTINGS)
    assert cm is not None
    assert cm["metadata"]["name"] == "queueworker-routes"
    assert json.loads(cm["data"]["routes.json"]) == routes_document(routed())
    refs = cm["metadata"]["ownerReferences"]
    assert [r["name"] for r in refs] == ["alpha", "mid", "zeta"]
    assert all(r["controller"] is False and r["kind"] == "QueueWorker" for r in refs)
    assert routes_configmap([], SETTINGS) is None
    no_uid = routes_configmap([make_qw("x")], SETTINGS)
    assert no_uid is not None and "ownerReferences" not in no_uid["metadata"]
    with pytest.raises(ValueError, match="one namespace"):
        routes_configmap([make_qw("a"), make_qw("b", namespace="other")], SETTINGS)


def test_routes_file_round_trip_first_match_wins(tmp_path: Path) -> None:
    doc = {
        "version": 1,
        "routes": [
            {"pattern": "tasks.*", "queue": "broad", "queueworker": "ns/a"},
            {"pattern": "tasks.taskA", "queue": "exact", "queueworker": "ns/b"},
            {"pattern": "other.task", "queue": "other", "queueworker": "ns/b"},
        ],
    }
    path = tmp_path / "routes.json"
    path.write_text(json.dumps(doc))
    routes = task_routes_from_file(path)
    assert routes == [
        {"tasks.*": {"queue": "broad"}},
        {"tasks.taskA": {"queue": "exact"}},
        {"other.task": {"queue": "other"}},
    ]
    app = Celery("t", broker="memory://", set_as_current=False)
    app.conf.task_routes = routes
    route = app.amqp.router.route
    assert route({}, "tasks.taskA", (), {})["queue"].name == "broad"  # first match, not the exact one
    assert route({}, "other.task", (), {})["queue"].name == "other"
    assert route({}, "unrouted", (), {})["queue"].name == "celery"


def test_routes_file_missing_or_empty_means_no_routes(tmp_path: Path) -> None:
    assert task_routes_from_file(tmp_path / "absent.json") == []
    empty = tmp_path / "empty.json"
    empty.write_text("  \n")
    assert task_routes_from_file(empty) == []
    none = tmp_path / "none.json"
    none.write_text(json.dumps(routes_document([])))
    assert task_routes_from_file(none) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "expected a JSON object"),
        ('{"version": 2, "routes": []}', "version: expected 1, got 2"),
        ('{"version": 1, "routes": {}}', "routes: expected a list"),
        ('{"version": 1, "routes": [7]}', r"routes\[0\]: expected an object"),
        ('{"version": 1, "routes": [{"pattern": "a"}]}', r"routes\[0\]\.queue: expected a non-empty string"),
        ('{"version": 1, "routes": [{"pattern": "", "queue": "q"}]}', r"routes\[0\]\.pattern"),
    ],
)
def test_malformed_routes_file_names_file_and_problem(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "routes.json"
    path.write_text(text)
    with pytest.raises(RoutesFileError, match=expected) as info:
        task_routes_from_file(path)
    assert str(path) in str(info.value)


def scheduled(enabled: bool = True, every: float = 30.0) -> list:
    return [
        make_qw(
            "b",
            uid="ub",
            schedules=(
                Schedule("s1", "tasks.add", None, every, args=(2, 3), queue="emails", enabled=enabled),
            ),
        ),
        make_qw("a", uid="ua", schedules=(Schedule("s2", "tasks.x", "0 7 * * *", None, queue="emails"),)),
        make_qw("c", uid="uc"),
    ]


def test_beat_deployment() -> None:
    beat = beat_deployment(scheduled(), SETTINGS)
    assert beat is not None
    assert beat["metadata"]["name"] == SETTINGS.beat_name
    spec = beat["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    c = pod["containers"][0]
    assert c["command"] == ["celery"]
    assert c["args"] == [
        "-A",
        "queueworker.beat.app:app",
        "beat",
        "--scheduler",
        "queueworker.beat.scheduler:Scheduler",
        "--loglevel",
        "INFO",
    ]
    assert c["image"] == SETTINGS.default_image
    assert c["env"] == [
        {
            "name": "QUEUEWORKER_BROKER_URL",
            "valueFrom": {
                "secretKeyRef": {"name": SETTINGS.broker_secret, "key": SETTINGS.broker_secret_key}
            },
        },
        *(
            {
                "name": name,
                "valueFrom": {"secretKeyRef": {"name": SETTINGS.broker_secret, "key": key, "optional": True}},
            }
            for name, key in (
                ("QUEUEWORKER_SENTINEL_MASTER", "sentinel-master"),
                ("QUEUEWORKER_SENTINEL_PASSWORD", "sentinel-password"),
            )
        ),
    ]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert any(m["mountPath"] == "/tmp" for m in c["volumeMounts"])
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    assert [r["name"] for r in beat["metadata"]["ownerReferences"]] == ["a", "b"]  # only the scheduling ones


def test_beat_only_with_enabled_schedules_and_checksum_follows_them() -> None:
    assert beat_deployment(scheduled()[2:], SETTINGS) is None
    assert (
        beat_deployment(
            [make_qw(schedules=(Schedule("s", "t", None, 5.0, queue="emails", enabled=False),))], SETTINGS
        )
        is None
    )

    def checksum(qws: list) -> str:
        beat = beat_deployment(qws, SETTINGS)
        assert beat is not None
        return beat["spec"]["template"]["metadata"]["annotations"][CHECKSUM_ANNOTATION]

    base = checksum(scheduled())
    assert checksum(scheduled()) == base
    assert checksum(scheduled(every=60.0)) != base
    assert checksum(scheduled(enabled=False)) != base
    assert checksum(scheduled()[::-1]) == base  # input order does not matter


def test_render_order_is_stable_and_grouped_by_namespace() -> None:
    qws = corpus()
    objects = render(qws, SETTINGS)
    assert objects == render(list(reversed(qws)), SETTINGS)
    keys = [(o["metadata"]["namespace"], o["kind"], o["metadata"]["name"]) for o in objects]
    namespaces = [k[0] for k in keys]
    assert namespaces == sorted(namespaces)
    team_b = [k for k in keys if k[0] == "team-b"]
    assert team_b[0][1:] == ("ConfigMap", "queueworker-routes")
    assert team_b[1][1:] == ("Deployment", "queueworker-beat")
    # team-c has a QueueWorker whose only schedule is disabled: routes, but no beat
    team_c = [k[1:] for k in keys if k[0] == "team-c"]
    assert ("Deployment", "queueworker-beat") not in team_c and team_c[0] == (
        "ConfigMap",
        "queueworker-routes",
    )
    assert len(set(keys)) == len(keys)
