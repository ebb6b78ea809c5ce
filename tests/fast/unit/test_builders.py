"""The worker Deployment and PDB builders, the label helper, owner references and the checksum."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from queueworker import contract
from queueworker.api.spec import Autoscaling, QueueWorker, QueueWorkerSpec, Schedule, Shutdown
from queueworker.builders import CHECKSUM_ANNOTATION, pod_disruption_budget, render, worker_deployment
from queueworker.builders import labels as lbl
from queueworker.settings import Settings

SETTINGS = Settings()
LONG_NAME = ".".join(["a" * 62, "b" * 62, "c" * 62, "d" * 63])  # 253 characters, a valid CR name


def make_qw(
    name: str = "emails", namespace: str = "shop", uid: str | None = None, **spec: Any
) -> QueueWorker:
    spec.setdefault("app", "shop.tasks:app")
    spec.setdefault("queues", ("emails",))
    return QueueWorker(name=name, namespace=namespace, spec=QueueWorkerSpec(**spec), uid=uid)


def corpus() -> list[QueueWorker]:
    """Varied QueueWorkers: every mode, long names, many queues, schedules, the pod-level fields."""
    many_queues = tuple(f"queue.{i}:{'x' * 80}" for i in range(32))
    return [
        make_qw("minimal", "default"),
        make_qw(LONG_NAME, "default", uid="u-long", queues=many_queues, autoscaling=Autoscaling(mode="keda")),
        make_qw(
            "z" * 253,
            "team-b",
            uid="u-z",
            queues=tuple(f"q-{i}" for i in range(32)),
            autoscaling=Autoscaling(
                mode="hpa",
                min_replicas=0,
                max_replicas=50,
                target_wait_seconds=0.5,
                scale_down_delay_seconds=7200,
            ),
        ),
        make_qw(
            "full",
            "team-b",
            uid="u-full",
            image="registry.example/shop:1.4",
            queues=("emails", "emails.low"),
            routes=("shop.tasks.email.*", "shop.tasks.digest"),
            concurrency=1024,
            pool="gevent",
            prefetch_multiplier=0,
            max_tasks_per_child=100,
            autoscaling=Autoscaling(
                mode="keda",
                min_replicas=0,
                max_replicas=3,
                target_wait_seconds=12.5,
                scale_down_delay_seconds=0,
            ),
            shutdown=Shutdown(grace_period_seconds=86400),
            resources={"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
            env=(
                {"name": "LOG_LEVEL", "value": "debug"},
                {"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}}},
            ),
            node_selector={"kubernetes.io/os": "linux", "pool": "workers"},
            tolerations=(
                {"key": "dedicated", "operator": "Equal", "value": "workers", "effect": "NoSchedule"},
            ),
            affinity={
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}
                        ]
                    }
                }
            },
            service_account_name="shop-worker",
            schedules=(
                Schedule("digest", "shop.tasks.email.digest", "0 7 * * *", None, queue="emails"),
                Schedule(
                    "retry",
                    "shop.tasks.email.retry",
                    None,
                    30.0,
                    args=(1, "x"),
                    kwargs={"k": [1]},
                    queue="emails.low",
                ),
                Schedule("off", "shop.tasks.email.off", None, 60.0, queue="emails", enabled=False),
            ),
        ),
        make_qw(
            "fixed",
            "team-b",
            uid="u-fixed",
            queues=("celery",),
            replicas=3,
            autoscaling=Autoscaling(mode="off"),
            shutdown=Shutdown(grace_period_seconds=1),
            pool="solo",
            schedules=(Schedule("tick", "tasks.add", None, 1.5, args=(2, 3), queue="celery"),),
        ),
        make_qw(
            "idle-schedules",
            "team-c",
            schedules=(Schedule("never", "tasks.add", "*/5 * * * *", None, queue="emails", enabled=False),),
        ),
    ]


def container(deploy: dict[str, Any]) -> dict[str, Any]:
    containers = deploy["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def env_of(deploy: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container(deploy)["env"]}


# --- labels -------------------------------------------------------------------------------------


def test_labels_and_selector_subset() -> None:
    assert lbl.labels("emails", "worker", "emails") == {
        "app.kubernetes.io/name": "queueworker",
        "app.kubernetes.io/instance": "emails",
        "app.kubernetes.io/component": "worker",
        "app.kubernetes.io/managed-by": "queueworker-operator",
        "queueworker.dev/queue": "emails",
    }
    assert lbl.selector("emails", "worker") == {
        "app.kubernetes.io/name": "queueworker",
        "app.kubernetes.io/instance": "emails",
        "app.kubernetes.io/component": "worker",
    }
    with pytest.raises(ValueError, match="component must be one of"):
        lbl.selector("emails", "bogus")


def test_safe_name_keeps_valid_short_names() -> None:
    assert lbl.safe_name("emails", "worker") == "emails-worker"
    assert lbl.safe_name("queueworker-beat") == "queueworker-beat"


def test_safe_name_shortens_long_and_dotted_names_stably() -> None:
    name = lbl.safe_name(LONG_NAME, "worker")
    assert len(name) <= 63 and lbl.is_dns_label(name)
    assert name.endswith("-worker")
    assert name == lbl.safe_name(LONG_NAME, "worker")  # stable
    assert lbl.safe_name("a.b", "worker") != lbl.safe_name("a-b", "worker")  # dot rewritten -> hashed
    assert lbl.safe_name(LONG_NAME, "worker") != lbl.safe_name(LONG_NAME[:-1] + "e", "worker")


def test_label_value_shortens_and_cleans() -> None:
    assert lbl.label_value("emails.low_1") == "emails.low_1"
    for raw in ("q:1", "x" * 64, "-lead", ":" * 10):
        value = lbl.label_value(raw)
        assert lbl.is_label_value(value), (raw, value)
        assert value != raw
    assert lbl.label_value("q:1") != lbl.label_value("q-1")


DNS_SUBDOMAIN = st.from_regex(
    r"\A[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?){0,3}\Z"
)


@settings(max_examples=200, deadline=None)
@given(DNS_SUBDOMAIN.filter(lambda s: len(s) <= 253), st.sampled_from(["worker", "beat", ""]))
def test_safe_name_always_a_dns_label(base: str, suffix: str) -> None:
    name = lbl.safe_name(base, suffix)
    assert lbl.is_dns_label(name)
    if suffix:
        assert name.endswith(f"-{suffix}")


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=0, max_size=300), st.text(min_size=0, max_size=300))
def test_label_value_always_valid_and_distinct(a: str, b: str) -> None:
    assert lbl.is_label_value(lbl.label_value(a))
    if a != b:
        assert lbl.label_value(a) != lbl.label_value(b)


# --- worker Deployment -------------------------------------------------------------------------


def test_worker_command_and_args() -> None:
    qw = make_qw(queues=("emails", "emails.low"), concurrency=4, pool="threads", prefetch_multiplier=3)
    c = container(worker_deployment(qw, SETTINGS))
    assert c["command"] == ["celery"]
    assert c["args"] == [
        "-A", "shop.tasks:app", "worker", "-Q", "emails,emails.low", "--concurrency", "4",
        "--pool", "threads", "--prefetch-multiplier", "3", "--hostname", "emails@%h",
        "--loglevel", "INFO", "--without-gossip", "--without-mingle",
    ]  # fmt: skip
    with_limit = container(
        worker_deployment(
            dataclasses.replace(qw, spec=dataclasses.replace(qw.spec, max_tasks_per_child=50)), SETTINGS
        )
    )
    assert with_limit["args"][-2:] == ["--max-tasks-per-child", "50"]


def test_worker_env_broker_from_secret_and_runtime_settings() -> None:
    custom = Settings(broker_secret="redis-auth", broker_secret_key="broker", worker_metrics_port=9999)
    qw = make_qw(
        queues=("a", "b"),
        autoscaling=Autoscaling(target_wait_seconds=2.5),
        shutdown=Shutdown(grace_period_seconds=600),
        env=({"name": "EXTRA", "value": "1"},),
    )
    deploy = worker_deployment(qw, custom)
    env = env_of(deploy)
    assert env["QUEUEWORKER_BROKER_URL"] == {
        "name": "QUEUEWORKER_BROKER_URL",
        "valueFrom": {"secretKeyRef": {"name": "redis-auth", "key": "broker"}},
    }
    shared = contract.worker_env(qw, metrics_port=9999, routes_file="/etc/queueworker/routes/routes.json")
    assert {name: env[name]["value"] for name in shared} == shared  # the shared settings, this pod's port
    assert env["PROMETHEUS_MULTIPROC_DIR"]["value"].startswith("/tmp/")
    assert env["EXTRA"] == {"name": "EXTRA", "value": "1"}
    assert [e["name"] for e in container(deploy)["env"]][-1] == "EXTRA"  # the user's come last
    port = container(deploy)["ports"][0]
    assert port["name"] == "metrics" and port["containerPort"] == 9999


def test_user_env_replaces_ours_without_duplicates() -> None:
    qw = make_qw(
        env=(
            {"name": "QUEUEWORKER_ROUTES_FILE", "value": "x"},
            {"name": "A", "value": "1"},
            {"name": "A", "value": "2"},
        )
    )
    names = [e["name"] for e in container(worker_deployment(qw, SETTINGS))["env"]]
    assert len(names) == len(set(names))
    env = env_of(worker_deployment(qw, SETTINGS))
    assert env["QUEUEWORKER_ROUTES_FILE"]["value"] == "x" and env["A"]["value"] == "2"


def test_restricted_security_and_read_only_root() -> None:
    deploy = worker_deployment(make_qw(), SETTINGS)
    pod = deploy["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container(deploy)["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] > 0
    mounts = {m["mountPath"]: m["name"] for m in container(deploy)["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    routes = volumes[mounts["/etc/queueworker/routes"]]["configMap"]
    assert routes["name"] == SETTINGS.routes_configmap and routes["optional"] is True
    assert pod["automountServiceAccountToken"] is False and "serviceAccountName" not in pod


def test_pod_fields_from_spec() -> None:
    qw = corpus()[3]
    deploy = worker_deployment(qw, SETTINGS)
    pod = deploy["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 86400
    assert pod["serviceAccountName"] == "shop-worker" and pod["automountServiceAccountToken"] is True
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux", "pool": "workers"}
    assert pod["tolerations"][0]["key"] == "dedicated"
    assert "nodeAffinity" in pod["affinity"]
    assert container(deploy)["resources"]["limits"] == {"memory": "1Gi"}
    assert container(deploy)["image"] == "registry.example/shop:1.4"
    assert container(worker_deployment(make_qw(), Settings(default_image="img:9")))["image"] == "img:9"


def test_probes_exec_qw_probe() -> None:
    c = container(worker_deployment(make_qw(), SETTINGS))
    assert c["livenessProbe"]["exec"]["command"] == ["qw", "probe", "liveness"]
    assert c["readinessProbe"]["exec"]["command"] == ["qw", "probe", "readiness"]
    # a wedged worker is restarted within minutes, a busy one is never judged by a short window
    live = c["livenessProbe"]
    assert live["periodSeconds"] * live["failureThreshold"] >= 60


@pytest.mark.parametrize(("mode", "expected"), [("off", 3), ("builtin", 2), ("keda", None), ("hpa", None)])
def test_replicas_by_mode(mode: str, expected: int | None) -> None:
    qw = make_qw(replicas=3, autoscaling=Autoscaling(mode=mode, min_replicas=2, max_replicas=5))
    spec = worker_deployment(qw, SETTINGS)["spec"]
    assert spec.get("replicas") == expected
    assert ("replicas" in spec) == (expected is not None)
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0},
    }
    assert spec["revisionHistoryLimit"] == 3


def test_selectors_are_a_subset_of_pod_labels() -> None:
    for qw in corpus():
        deploy = worker_deployment(qw, SETTINGS)
        selector = deploy["spec"]["selector"]["matchLabels"]
        pod_labels = deploy["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= pod_labels.items()
        assert set(selector) == {lbl.NAME_KEY, lbl.INSTANCE_KEY, lbl.COMPONENT_KEY}
        pdb = pod_disruption_budget(qw, SETTINGS)
        assert pdb["spec"]["selector"]["matchLabels"] == selector
        assert pdb["metadata"]["name"] == deploy["metadata"]["name"]
        assert pdb["spec"]["maxUnavailable"] == 1


def test_distinct_queueworkers_never_share_a_selector() -> None:
    names = [LONG_NAME, LONG_NAME[:-1] + "e", "a.b", "a-b", "z" * 253, "z" * 252]
    selectors = {
        tuple(sorted(worker_deployment(make_qw(n), SETTINGS)["spec"]["selector"]["matchLabels"].items()))
        for n in names
    }
    deploy_names = {worker_deployment(make_qw(n), SETTINGS)["metadata"]["name"] for n in names}
    assert len(selectors) == len(names) and len(deploy_names) == len(names)


def checksum_of(qw: QueueWorker) -> str:
    return worker_deployment(qw, SETTINGS)["spec"]["template"]["metadata"]["annotations"][CHECKSUM_ANNOTATION]


def test_checksum_follows_the_pod_spec_only() -> None:
    base = make_qw(replicas=1, autoscaling=Autoscaling(mode="off"))
    same = [
        dataclasses.replace(base, uid="u-1", generation=7),
        dataclasses.replace(base, spec=dataclasses.replace(base.spec, replicas=5)),
        dataclasses.replace(base, spec=dataclasses.replace(base.spec, routes=("x.*",))),
        dataclasses.replace(
            base,
            spec=dataclasses.replace(
                base.spec, autoscaling=Autoscaling(mode="off", max_replicas=99, scale_down_delay_seconds=1)
            ),
        ),
        # the wait target is the autoscaler's and the exporter's (queueworker:targets), not the pod's
        dataclasses.replace(
            base, spec=dataclasses.replace(base.spec, autoscaling=Autoscaling(target_wait_seconds=5))
        ),
    ]
    for qw in same:
        assert checksum_of(qw) == checksum_of(base)
    changed = [
        dataclasses.replace(base.spec, image="other:1"),
        dataclasses.replace(base.spec, concurrency=3),
        dataclasses.replace(base.spec, env=({"name": "X", "value": "1"},)),
        dataclasses.replace(base.spec, shutdown=Shutdown(grace_period_seconds=30)),
        dataclasses.replace(base.spec, resources={"limits": {"memory": "1Gi"}}),
        dataclasses.replace(base.spec, queues=("emails", "more")),
    ]
    sums = {checksum_of(dataclasses.replace(base, spec=spec)) for spec in changed}
    assert len(sums) == len(changed) and checksum_of(base) not in sums
    assert len(checksum_of(base)) == 64


def test_controller_owner_reference_only_with_a_uid() -> None:
    with_uid = render([make_qw(uid="abc", autoscaling=Autoscaling(mode="keda"))], SETTINGS)
    owned = [o for o in with_uid if o["metadata"]["labels"][lbl.COMPONENT_KEY] == "worker"]
    assert {o["kind"] for o in owned} == {"Deployment", "PodDisruptionBudget", "ScaledObject"}
    for obj in owned:
        assert obj["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "queueworker.dev/v1alpha1",
                "kind": "QueueWorker",
                "name": "emails",
                "uid": "abc",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    for obj in render([make_qw(autoscaling=Autoscaling(mode="keda"))], SETTINGS):
        assert "ownerReferences" not in obj["metadata"]


def test_user_structures_are_copied_as_plain_data() -> None:
    from types import MappingProxyType

    limits = MappingProxyType({"memory": "1Gi"})
    qw = make_qw(
        resources=MappingProxyType({"limits": limits}),
        tolerations=(MappingProxyType({"key": "k", "operator": "Exists"}),),
        env=(MappingProxyType({"name": "A", "value": "1"}),),
    )
    c = container(worker_deployment(qw, SETTINGS))
    assert type(c["resources"]) is dict and type(c["resources"]["limits"]) is dict
    c["resources"]["limits"]["memory"] = "2Gi"
    assert limits["memory"] == "1Gi"
    assert type(worker_deployment(qw, SETTINGS)["spec"]["template"]["spec"]["tolerations"][0]) is dict
