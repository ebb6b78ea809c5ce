"""The cluster of the e2e suite: kind, or the local cluster of `make cluster-up`. Find it (or say why
not), refuse anything else, and the few operations the flows need (wait, run a pod, redis-cli in Redis)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support import waiting
from tests.support.kubectl import kubectl

DEFAULT_CONTEXT = "kind-queueworker"
#: The cluster `make cluster-up` builds on this machine (hack/cluster): its context, and its node's label.
LOCAL_CONTEXT = "queueworker-local"
LOCAL_LABEL = "queueworker.dev/local-cluster"


class Unavailable(Exception):
    """No kind cluster to run on: the suite skips with this reason."""


@dataclass
class Cluster:
    context: str
    api: Any  # kubernetes.client.ApiClient

    @property
    def core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self.api)

    @property
    def apps(self) -> Any:
        from kubernetes import client

        return client.AppsV1Api(self.api)

    @property
    def custom(self) -> Any:
        from kubernetes import client

        return client.CustomObjectsApi(self.api)

    @property
    def policy(self) -> Any:
        from kubernetes import client

        return client.PolicyV1Api(self.api)

    @property
    def extensions(self) -> Any:
        from kubernetes import client

        return client.ApiextensionsV1Api(self.api)

    def kubectl(
        self, *args: str, check: bool = True, stdin: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """kubectl as a user runs it (the one built with the local cluster, else the one on PATH); with
        `check`, a non-zero exit fails the test with kubectl's own message."""
        from hack.deploy import kubectl_bin

        return kubectl(
            kubectl_bin(), f"--context={self.context}", *args, stdin=stdin, check=check, timeout=timeout
        )


def connect() -> Cluster:
    """The kind cluster named by $QW_E2E_CONTEXT (default: the current context). Raises Unavailable
    with the reason when there is none, or when the context is not a kind cluster."""
    try:
        from kubernetes import client, config
    except ImportError as exc:  # pragma: no cover - the dev extras install it
        raise Unavailable(f"the kubernetes client is not installed: {exc}") from exc
    kubeconfig = os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
    if not any(Path(p).exists() for p in kubeconfig.split(os.pathsep)):
        raise Unavailable(f"no kubeconfig at {kubeconfig}: create a cluster with `make kind-up`")
    try:
        contexts, current = config.list_kube_config_contexts(config_file=kubeconfig)
    except (config.ConfigException, OSError) as exc:
        raise Unavailable(f"kubeconfig unreadable: {exc}") from exc
    wanted = os.environ.get("QW_E2E_CONTEXT") or (current or {}).get("name") or DEFAULT_CONTEXT
    by_name = {c["name"]: c for c in contexts or []}
    if wanted not in by_name:
        raise Unavailable(f"kube context {wanted!r} not found: create it with `make kind-up`")
    cluster_name = by_name[wanted]["context"].get("cluster", "")
    ours = wanted == LOCAL_CONTEXT and cluster_name == LOCAL_CONTEXT
    if not ours and not (wanted.startswith("kind-") and cluster_name.startswith("kind-")):
        raise Unavailable(
            f"refusing kube context {wanted!r} (cluster {cluster_name!r}): not a kind cluster; "
            f"the e2e suite installs and deletes things, it only runs on kind"
        )
    api = config.new_client_from_config(config_file=kubeconfig, context=wanted)
    try:
        nodes: list[Any] = client.CoreV1Api(api).list_node(_request_timeout=5).items
    except Exception as exc:  # urllib3 / API errors: unreachable for this suite's purpose
        raise Unavailable(f"kind cluster {wanted!r} is not reachable: {type(exc).__name__}: {exc}") from exc
    local = wanted == LOCAL_CONTEXT and all(
        (n.metadata.labels or {}).get(LOCAL_LABEL) == "true" for n in nodes
    )
    not_kind = [n.metadata.name for n in nodes if not (n.spec.provider_id or "").startswith("kind://")]
    if nodes and local:
        return Cluster(context=wanted, api=api)
    if not nodes or not_kind:
        raise Unavailable(
            f"refusing kube context {wanted!r}: nodes {not_kind or '(none)'} are not kind nodes"
        )
    return Cluster(context=wanted, api=api)


def wait_for(
    what: str,
    check: Callable[[], Any],
    timeout: float,
    interval: float = 2.0,
    diagnose: Callable[[], str] | None = None,
) -> Any:
    """tests.support.waiting.wait_for as the e2e suite uses it: `what` first, API errors taken as "not yet"
    (things restart), a failed assertion (with the diagnosis) on timeout."""
    return waiting.wait_for(
        check,
        timeout,
        interval,
        what,
        tolerate=(Exception,),
        diagnose=diagnose,
        failure=AssertionError,
    )


def node_images(cluster: Cluster) -> set[str]:
    names: set[str] = set()
    for node in cluster.core.list_node().items:
        for image in node.status.images or []:
            for name in image.names or []:
                names.add(name)
                names.add(name.removeprefix("docker.io/").removeprefix("library/"))
    return names


def pods(cluster: Cluster, namespace: str, selector: str) -> list[Any]:
    return list(cluster.core.list_namespaced_pod(namespace, label_selector=selector).items)


def describe_pods(cluster: Cluster, namespace: str) -> str:
    lines = []
    for pod in cluster.core.list_namespaced_pod(namespace).items:
        statuses = [
            (s.name, s.ready, s.restart_count, (s.state.waiting.reason if s.state.waiting else ""))
            for s in pod.status.container_statuses or []
        ]
        lines.append(f"  {pod.metadata.name}: {pod.status.phase} {statuses}")
    return "pods:\n" + "\n".join(lines)


def exec_in(cluster: Cluster, namespace: str, pod: str, container: str, command: list[str]) -> str:
    from kubernetes.stream import stream

    output = stream(
        cluster.core.connect_get_namespaced_pod_exec,
        pod,
        namespace,
        container=container,
        command=command,
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
        _request_timeout=30,
    )
    return str(output)


#: The Redis pod's own CA (the chart mounts its TLS Secret there when Redis serves TLS, the default).
REDIS_TLS = "/etc/redis/tls"
#: Where a client pod finds the broker's CA, as the chart and the operator mount it (the broker Secret's
#: ca.crt, which its rediss:// URL names).
BROKER_CA_DIR = "/etc/queueworker/broker-tls"


def redis_cli(cluster: Cluster, namespace: str, pod: str, *args: str) -> str:
    """redis-cli in the Redis pod, authenticated the way its probes are (REDISCLI_AUTH from the file), over
    TLS when Redis serves it."""
    script = (
        'REDISCLI_AUTH="$(cat /run/secrets/redis/password)"; export REDISCLI_AUTH; '
        f'if [ -f {REDIS_TLS}/ca.crt ]; then set -- --tls --cacert {REDIS_TLS}/ca.crt "$@"; fi; '
        'exec redis-cli --no-auth-warning "$@"'
    )
    return exec_in(cluster, namespace, pod, "redis", ["/bin/sh", "-c", script, "redis-cli", *args]).strip()


def broker_ca_volume() -> tuple[dict[str, Any], dict[str, Any]]:
    """The volume and mount of the broker Secret's ca.crt for a client pod (optional: a plaintext broker's
    Secret has none)."""
    volume = {
        "name": "broker-tls",
        "secret": {
            "secretName": "queueworker-broker",
            "optional": True,
            "items": [{"key": "ca.crt", "path": "ca.crt"}],
        },
    }
    return volume, {"name": "broker-tls", "mountPath": BROKER_CA_DIR, "readOnly": True}


def restricted_container(
    name: str, image: str, command: list[str], env: list[dict[str, Any]], mounts: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "Never",
        "command": command,
        "env": env,
        "volumeMounts": mounts,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
    }


BROKER_CLIENT = {"queueworker.dev/broker-client": "true"}


def client_pod(
    name: str,
    container: dict[str, Any],
    volumes: list[dict[str, Any]],
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A pod that runs `container` (restricted_container) once, as restricted as the workers: no service
    account token, non-root, the runtime's seccomp profile. `labels` default to a broker client's (the
    label the chart's NetworkPolicy lets in to Redis)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": dict(BROKER_CLIENT) if labels is None else labels},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "containers": [container],
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "volumes": volumes,
        },
    }


def hand_external_metrics(provider: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """Hand the local cluster's external.metrics.k8s.io to `provider` (keda or adapter), as a person does
    with `python -m hack.cluster external-metrics PROVIDER`; the caller checks the exit."""
    return subprocess.run(
        [sys.executable, "-m", "hack.cluster", "external-metrics", provider],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_to_completion(cluster: Cluster, namespace: str, pod: dict[str, Any], timeout: float = 180) -> str:
    """Create a restartPolicy=Never pod, wait for it to succeed, return its log (fail with it otherwise)."""
    name = pod["metadata"]["name"]
    cluster.core.create_namespaced_pod(namespace, pod)

    def finished() -> str | None:
        phase = cluster.core.read_namespaced_pod(name, namespace).status.phase
        return phase if phase in ("Succeeded", "Failed") else None

    try:
        phase = wait_for(
            f"pod {name} to finish", finished, timeout, diagnose=lambda: describe_pods(cluster, namespace)
        )
        log = str(cluster.core.read_namespaced_pod_log(name, namespace))
        assert phase == "Succeeded", f"pod {name} failed:\n{log}"
        return log
    finally:
        cluster.core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
