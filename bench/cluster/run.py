"""The cluster side of `make bench-cluster`: set each policy up, replay the trace from a producer pod,
sample the worker pods, read the tasks' records, and leave nothing behind (bench/cluster/__main__.py)."""

from __future__ import annotations

import base64
import functools
import json
import os
import time
from typing import Any

from bench.cluster import measure, policies, trace
from bench.cluster.policies import LABEL, MIN_REPLICAS, POLICIES, Policy
from bench.cluster.report import keep, say
from hack.cluster import binaries
from tests.e2e.cluster import (
    BROKER_CLIENT,
    LOCAL_CONTEXT,
    Cluster,
    Unavailable,
    broker_ca_volume,
    client_pod,
    connect,
    redis_cli,
    restricted_container,
    wait_for,
)
from tests.e2e.cluster import hand_external_metrics as cluster_hand_external_metrics

GROUP, VERSION = "queueworker.dev", "v1alpha1"
WORKER = "app.kubernetes.io/component=worker"
#: The policies run at once first, on KEDA's External-metrics API; then the others (hpa on the adapter's).
#: Seconds after the trace's arrivals end that the run waits for every policy to be back at minReplicas.
TAIL = 300.0

PRODUCER = """
import json, sys, time
from tasks import app
plan = json.loads(sys.argv[1])
t0 = time.time() + 3
print(f"start at {t0:.3f}", flush=True)
for offset, seconds in zip(plan["arrival"], plan["service"]):
    delay = t0 + offset - time.time()
    if delay > 0:
        time.sleep(delay)
    for queue, record in plan["queues"]:
        app.send_task("tasks.timed", args=[seconds, record], queue=queue)
print(f"published {len(plan['arrival'])} per queue", flush=True)
"""


def cluster() -> Cluster:
    config = binaries.cache_dir() / "cluster" / "kubeconfig"
    os.environ.setdefault("KUBECONFIG", str(config))
    os.environ["QW_E2E_CONTEXT"] = LOCAL_CONTEXT
    try:
        return connect()
    except Unavailable as exc:
        raise SystemExit(
            f"bench-cluster needs the local cluster (`make cluster-up deploy`, as root): {exc}"
        ) from None


class Bench:
    def __init__(self, c: Cluster, namespace: str) -> None:
        self.c, self.ns = c, namespace
        secret = c.core.read_namespaced_secret("queueworker-broker", namespace)
        data = {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}
        self.broker_url, self.ca = data["url"], data.get("ca.crt", "")
        redis = c.core.list_namespaced_pod(
            namespace, label_selector="app.kubernetes.io/component=redis"
        ).items
        if not redis:
            raise SystemExit(f"no Redis pod in {namespace}: `make deploy` installs the chart there")
        self.redis_pod = redis[0].metadata.name
        self.redis_labels = {
            k: v for k, v in (redis[0].metadata.labels or {}).items() if k.startswith("app.kubernetes.io/")
        }
        self.redis_labels.pop("app.kubernetes.io/version", None)
        self.last_keda_message = ""

    # -- objects -------------------------------------------------------------------------------------
    def apply(self, obj: dict[str, Any]) -> None:
        self.c.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", stdin=json.dumps(obj))

    def redis(self, *args: str) -> str:
        return redis_cli(self.c, self.ns, self.redis_pod, *args)

    def deployment_of(self, instance: str) -> Any:
        items = self.c.apps.list_namespaced_deployment(
            self.ns, label_selector=f"app.kubernetes.io/instance={instance},{WORKER}"
        ).items
        return items[0] if items else None

    def set_up(self, policy: Policy) -> measure.Track:
        self.apply(policies.queueworker(policy, self.ns))
        rendered = wait_for(
            f"{policy.queueworker}'s worker Deployment", lambda: self.deployment_of(policy.queueworker), 120
        )
        if policy.keda:
            body = self.c.api.sanitize_for_serialization(rendered)
            self.apply(policies.scaled_copy(body, policy))
            self.c.custom.delete_namespaced_custom_object(
                GROUP, VERSION, self.ns, "queueworkers", policy.queueworker
            )
            for obj in policies.keda_auth(self.ns, self.broker_url, self.ca):
                self.apply(obj)
            self.apply(policies.keda_network_policy(self.ns, self.redis_labels))
            self.apply(policies.scaled_object(policy, self.ns, self.broker_url))
        name = wait_for(
            f"{policy.name}'s worker Deployment", lambda: self.deployment_of(policy.instance), 120
        )
        return measure.Track(f"app.kubernetes.io/instance={policy.instance},{WORKER}", name.metadata.name)

    def settled(self, track: measure.Track) -> bool:
        dep = self.c.apps.read_namespaced_deployment(track.deployment, self.ns)
        pods = self.c.core.list_namespaced_pod(self.ns, label_selector=track.selector).items
        ready = (dep.status.ready_replicas or 0) == MIN_REPLICAS
        return bool(dep.spec.replicas == MIN_REPLICAS and ready and len(pods) == MIN_REPLICAS)

    def tear_down(self, group: list[Policy]) -> None:
        for p in group:
            self.c.kubectl(
                "delete",
                "queueworkers.queueworker.dev",
                p.queueworker,
                "-n",
                self.ns,
                "--ignore-not-found",
                "--wait=false",
                check=False,
            )
            if p.keda:
                self.c.kubectl(
                    "delete",
                    "scaledobjects.keda.sh",
                    p.instance,
                    "-n",
                    self.ns,
                    "--ignore-not-found",
                    check=False,
                )
                self.c.kubectl(
                    "delete", "deployment", p.instance, "-n", self.ns, "--ignore-not-found", check=False
                )
            self.redis("DEL", p.record, p.queue)

        def gone() -> bool:
            return not any(
                self.c.core.list_namespaced_pod(
                    self.ns, label_selector=f"app.kubernetes.io/instance={p.instance},{WORKER}"
                ).items
                for p in group
            )

        try:
            wait_for("the benchmark's worker pods to go", gone, 180)
        except AssertionError:  # a worker still finishing a task: its pod goes without grace
            say("  worker pods still terminating after 180 s: deleted without grace")
            for p in group:
                selector = f"app.kubernetes.io/instance={p.instance},{WORKER}"
                self.c.kubectl(
                    "delete",
                    "pods",
                    "-n",
                    self.ns,
                    "-l",
                    selector,
                    "--grace-period=0",
                    "--force",
                    check=False,
                )

    def clean(self) -> None:
        """What an interrupted run left: every policy's objects, queue and records, the producer pods."""
        self.c.kubectl("delete", "pods", "-n", self.ns, "-l", f"{LABEL}=1", "--ignore-not-found", check=False)
        for p in POLICIES.values():  # an interrupted run's workers may be mid-task: no grace for them
            selector = f"app.kubernetes.io/instance={p.instance},{WORKER}"
            self.c.kubectl(
                "delete", "pods", "-n", self.ns, "-l", selector, "--grace-period=0", "--force", check=False
            )
        self.tear_down(list(POLICIES.values()))
        self.tear_down_shared()

    def tear_down_shared(self) -> None:
        for kind in ("triggerauthentications.keda.sh", "secret", "networkpolicy"):
            self.c.kubectl(
                "delete", kind, "-n", self.ns, "-l", f"{LABEL}=1", "--ignore-not-found", check=False
            )

    # -- the run ---------------------------------------------------------------------------------------
    def producer(self, group: list[Policy], sample: trace.Replay) -> str:
        name = f"bench-producer-{int(time.time())}"
        plan = {
            "queues": [[p.queue, p.record] for p in group],
            "arrival": [round(float(t), 3) for t in sample.arrival],
            "service": [round(float(s), 3) for s in sample.service],
        }
        ca_volume, ca_mount = broker_ca_volume()
        container = restricted_container(
            "producer",
            self.worker_image(),
            ["python", "-c", PRODUCER, json.dumps(plan)],
            env=[
                {
                    "name": "QUEUEWORKER_BROKER_URL",
                    "valueFrom": {"secretKeyRef": {"name": "queueworker-broker", "key": "url"}},
                }
            ],
            mounts=[{"name": "tmp", "mountPath": "/tmp"}, ca_mount],
        )
        pod = client_pod(
            name, container, [{"name": "tmp", "emptyDir": {}}, ca_volume], {**BROKER_CLIENT, LABEL: "1"}
        )
        self.c.core.create_namespaced_pod(self.ns, pod)
        return name

    def operator_env(self) -> dict[str, str]:
        op = self.c.apps.list_namespaced_deployment(
            self.ns, label_selector="app.kubernetes.io/component=operator"
        ).items
        return {e.name: e.value for e in op[0].spec.template.spec.containers[0].env or []} if op else {}

    def worker_image(self) -> str:
        return str(self.operator_env().get("QUEUEWORKER_WORKER_IMAGE") or "queueworker/worker:dev")

    def autoscale_interval(self) -> float:
        """The operator's tick (the chart sets QUEUEWORKER_AUTOSCALE_INTERVAL): the replay ticks so."""
        return float(self.operator_env().get("QUEUEWORKER_AUTOSCALE_INTERVAL") or 5.0)

    def log(self, pod: str) -> str:
        try:
            return str(self.c.core.read_namespaced_pod_log(pod, self.ns))
        except Exception:  # not started yet
            return ""

    def run(
        self, group: list[Policy], sample: trace.Replay
    ) -> dict[str, tuple[measure.Figures, measure.Track]]:
        try:
            return self.measure(group, sample)
        finally:
            self.tear_down(group)

    def scaled_object_ready(self, policy: Policy) -> bool:
        so = self.c.custom.get_namespaced_custom_object(
            "keda.sh", "v1alpha1", self.ns, "scaledobjects", policy.instance
        )
        conditions = {c["type"]: c for c in so.get("status", {}).get("conditions") or []}
        ready = conditions.get("Ready", {})
        if ready.get("status") == "False" and ready.get("message"):
            self.last_keda_message = str(ready["message"])
        return ready.get("status") == "True"

    def measure(
        self, group: list[Policy], sample: trace.Replay
    ) -> dict[str, tuple[measure.Figures, measure.Track]]:
        tracks = {p.name: self.set_up(p) for p in group}
        for p in group:
            if p.keda:
                wait_for(
                    f"KEDA to report {p.instance} Ready",
                    functools.partial(self.scaled_object_ready, p),
                    120,
                    diagnose=lambda: self.last_keda_message,
                )
            settled = functools.partial(self.settled, tracks[p.name])
            wait_for(f"{p.name} at {MIN_REPLICAS} ready worker", settled, 300)
            self.redis("DEL", p.record, p.queue)
        say(f"  {', '.join(p.name for p in group)}: each at {MIN_REPLICAS} ready worker; replaying the trace")
        sampler = measure.Sampler(self.c.core, self.c.apps, self.ns, tracks)
        sampler.start()
        pod = self.producer(group, sample)
        try:
            line = wait_for(
                "the producer to start", lambda: "start at " in self.log(pod) and self.log(pod), 180, 1.0
            )
            start = float(str(line).split("start at ", 1)[1].split()[0])
            n = len(sample.arrival)
            deadline = start + trace.DURATION + TAIL
            wait_for(
                "every task to run",
                lambda: all(int(self.redis("LLEN", p.record) or 0) >= n for p in group),
                deadline - time.time() + 60,
                5.0,
            )

            def home() -> bool:
                settled = time.time() > start + trace.DURATION
                return settled and all(
                    measure.back_at_min(tracks[p.name].samples, start + sample.burst_end, MIN_REPLICAS)
                    is not None
                    and tracks[p.name].samples[-1][1] == MIN_REPLICAS
                    for p in group
                )

            try:
                wait_for("every policy back at minReplicas", home, max(deadline - time.time(), 1), 5.0)
            except AssertionError:
                say(f"  not every policy came back to minReplicas within {TAIL:.0f} s after the trace")
        finally:
            sampler.stop()
            self.c.core.delete_namespaced_pod(pod, self.ns, grace_period_seconds=0)
        out = {}
        for p in group:
            records = self.redis("LRANGE", p.record, "0", "-1").splitlines()
            burst = (trace.BURST_START, sample.burst_end)
            out[p.name] = (
                measure.figures(tracks[p.name], records, start, burst, trace.DURATION, MIN_REPLICAS),
                tracks[p.name],
            )
            keep(p.name, start, tracks[p.name], records, self.autoscale_interval())
        return out


def hand_external_metrics(provider: str) -> None:
    out = cluster_hand_external_metrics(provider, timeout=300)
    if out.returncode:
        raise SystemExit(f"external-metrics {provider}: {out.stderr.strip()}")


def keda_version(c: Cluster) -> str:
    log = c.kubectl("logs", "-n", "keda", "deployment/keda-operator", check=False).stdout
    for line in log.splitlines():
        if "KEDA Version" in line:
            return line.split("KEDA Version", 1)[1].strip(' :"').split()[0].strip('",')
    return "(not in its log)"
