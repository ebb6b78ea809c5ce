"""The policies `make bench-cluster` runs, as the objects a team would apply for each, all with the same
bounds and workers (the QueueWorker API's defaults: minReplicas 1 here, maxReplicas 10, concurrency 2,
targetWaitSeconds 30, scaleDownDelaySeconds 300):

- builtin: a QueueWorker in `mode: builtin`: the operator's autoscaler.
- builtin-60: the same with `scaleDownDelaySeconds: 60`: the QueueWorker a team that tunes KEDA's
  scale-down window to 60 s writes (the simulation's builtin-60), the one compared with keda-tuned.
- keda: a real KEDA ScaledObject at its defaults (the redis list-length trigger, listLength 5,
  pollingInterval 30 s, cooldownPeriod 300 s, the HPA's default behavior) on a worker Deployment.
- keda-tuned: the same tuned for latency as bench/autoscale/baselines.py describes (pollingInterval 5 s,
  cooldownPeriod 60 s, listLength = concurrency x targetWaitSeconds / mean task seconds, scale-up
  stabilization 0 s with 100 % or 4 pods per 15 s, scale-down stabilization 60 s at 100 % per 15 s).
- hpa: a QueueWorker in `mode: hpa`: the HPA reads the exporter's series through prometheus-adapter.

The KEDA baselines scale a copy of the Deployment the operator renders for a QueueWorker (what a team
that assembles the worker by hand would run), so the workers are the same in every policy. KEDA's redis
scaler connects to the chart's Redis as the workers do: TLS verified against the broker's CA, the
password from the broker Secret, through a NetworkPolicy that lets the keda namespace in.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from queueworker.broker.url import parse

from bench.autoscale.baselines import tuned_list_length
from bench.autoscale.traces import SERVICE_MEAN

PREFIX = "bench"
LABEL = "bench.queueworker.dev/cluster"
CONCURRENCY = 2
MIN_REPLICAS, MAX_REPLICAS = 1, 10
TARGET_WAIT, SCALE_DOWN_DELAY = 30.0, 300.0
KEDA_DEFAULT_LIST_LENGTH = 5
TUNED_POLLING, TUNED_COOLDOWN, TUNED_DOWN_WINDOW = 5, 60, 60
AUTH_SECRET = f"{PREFIX}-keda-redis"
INSTANCE = "app.kubernetes.io/instance"


@dataclass(frozen=True)
class Policy:
    name: str  # builtin, keda, keda-tuned, hpa
    mode: str  # the QueueWorker's mode (the KEDA baselines: a template QueueWorker in mode off)
    delay: float = SCALE_DOWN_DELAY
    target_wait: float = TARGET_WAIT
    list_length: int | None = None  # keda-tuned's listLength (None: concurrency x target / task seconds)

    @property
    def queueworker(self) -> str:
        return f"{PREFIX}-{self.name}"

    @property
    def queue(self) -> str:
        return f"{PREFIX}_{self.name.replace('-', '_')}"

    @property
    def record(self) -> str:
        """The Redis list the tasks append their times to."""
        return f"{PREFIX}:times:{self.queue}"

    @property
    def keda(self) -> bool:
        return self.name.startswith("keda")

    @property
    def instance(self) -> str:
        """The worker pods' instance label (the KEDA baselines' copy has its own)."""
        return f"{self.queueworker}-scaled" if self.keda else self.queueworker


POLICIES = {
    p.name: p
    for p in (
        Policy("builtin", "builtin"),
        Policy("builtin-60", "builtin", TUNED_DOWN_WINDOW),
        Policy("keda", "off"),
        Policy("keda-tuned", "off"),
        Policy("hpa", "hpa"),
        # The frontier (`--policies builtin-60-t60,keda-tuned-3,keda-tuned-12`): each one's main knob turned.
        Policy("builtin-60-t60", "builtin", TUNED_DOWN_WINDOW, target_wait=60.0),
        Policy("keda-tuned-3", "off", list_length=3),
        Policy("keda-tuned-12", "off", list_length=12),
    )
}


def tuned_length() -> int:
    return int(tuned_list_length(CONCURRENCY, TARGET_WAIT, SERVICE_MEAN))


def queueworker(policy: Policy, namespace: str) -> dict[str, Any]:
    autoscaling: dict[str, Any] = {"mode": policy.mode}
    if policy.mode != "off":
        autoscaling |= {
            "minReplicas": MIN_REPLICAS,
            "maxReplicas": MAX_REPLICAS,
            "targetWaitSeconds": policy.target_wait,
            "scaleDownDelaySeconds": policy.delay,
        }
    return {
        "apiVersion": "queueworker.dev/v1alpha1",
        "kind": "QueueWorker",
        "metadata": {"name": policy.queueworker, "namespace": namespace, "labels": {LABEL: "1"}},
        "spec": {
            "app": "tasks:app",
            "queues": [policy.queue],
            "concurrency": CONCURRENCY,
            "replicas": 0 if policy.mode == "off" else MIN_REPLICAS,
            "autoscaling": autoscaling,
            # Small requests: four policies' workers share the node's two cores (their tasks sleep).
            "resources": {"requests": {"cpu": "10m", "memory": "96Mi"}, "limits": {"memory": "384Mi"}},
        },
    }


def scaled_copy(rendered: dict[str, Any], policy: Policy) -> dict[str, Any]:
    """The operator's worker Deployment of the template QueueWorker, as a Deployment of its own (no owner,
    its own instance label so that no selector overlaps), at minReplicas."""
    meta = rendered["metadata"]
    labels = {**meta.get("labels", {}), INSTANCE: policy.instance, LABEL: "1"}
    spec = copy.deepcopy(rendered["spec"])
    spec["replicas"] = MIN_REPLICAS
    spec["selector"]["matchLabels"][INSTANCE] = policy.instance
    spec["template"]["metadata"]["labels"][INSTANCE] = policy.instance
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": f"{policy.instance}", "namespace": meta["namespace"], "labels": labels},
        "spec": spec,
    }


def keda_auth(namespace: str, broker_url: str, ca: str) -> list[dict[str, Any]]:
    """The Secret and TriggerAuthentication KEDA's redis scaler authenticates with."""
    broker = parse(broker_url)
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": AUTH_SECRET, "namespace": namespace, "labels": {LABEL: "1"}},
        "stringData": {"password": broker.password or "", "tls": "enable", "ca": ca},
    }
    params = ["password", "tls", "ca"] if broker.tls else ["password"]
    auth = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "TriggerAuthentication",
        "metadata": {"name": AUTH_SECRET, "namespace": namespace, "labels": {LABEL: "1"}},
        "spec": {"secretTargetRef": [{"parameter": p, "name": AUTH_SECRET, "key": p} for p in params]},
    }
    return [secret, auth]


def redis_address(broker_url: str) -> tuple[str, bool]:
    broker = parse(broker_url)
    host, port = broker.hosts[0]
    return f"{host}:{port}", broker.tls


def scaled_object(policy: Policy, namespace: str, broker_url: str) -> dict[str, Any]:
    address, _ = redis_address(broker_url)
    tuned = policy.name.startswith("keda-tuned")
    metadata = {
        "address": address,
        "listName": policy.queue,
        "listLength": str((policy.list_length or tuned_length()) if tuned else KEDA_DEFAULT_LIST_LENGTH),
    }
    # TLS (verified against the broker's CA) comes with the TriggerAuthentication (keda_auth).
    spec: dict[str, Any] = {
        "scaleTargetRef": {"name": policy.instance},
        "minReplicaCount": MIN_REPLICAS,
        "maxReplicaCount": MAX_REPLICAS,
        "triggers": [{"type": "redis", "metadata": metadata, "authenticationRef": {"name": AUTH_SECRET}}],
    }
    if tuned:
        up = [
            {"type": "Percent", "value": 100, "periodSeconds": 15},
            {"type": "Pods", "value": 4, "periodSeconds": 15},
        ]
        spec |= {
            "pollingInterval": TUNED_POLLING,
            "cooldownPeriod": TUNED_COOLDOWN,
            "advanced": {
                "horizontalPodAutoscalerConfig": {
                    "behavior": {
                        "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": up},
                        "scaleDown": {
                            "stabilizationWindowSeconds": TUNED_DOWN_WINDOW,
                            "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
                        },
                    }
                }
            },
        }
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": policy.instance, "namespace": namespace, "labels": {LABEL: "1"}},
        "spec": spec,
    }


def keda_network_policy(namespace: str, redis_labels: dict[str, str]) -> dict[str, Any]:
    """KEDA's operator (namespace keda) may reach Redis: its redis scaler reads the list's length."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": f"{PREFIX}-keda-to-redis", "namespace": namespace, "labels": {LABEL: "1"}},
        "spec": {
            "podSelector": {"matchLabels": redis_labels},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {
                            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "keda"}},
                        }
                    ]
                }
            ],
        },
    }
