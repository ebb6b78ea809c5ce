"""Helpers every builder shares: owner references, restricted security contexts, checksums, quantities."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from queueworker.api.spec import API_VERSION, KIND, QueueWorker
from queueworker.builders.labels import labels, safe_name
from queueworker.settings import Settings

#: Annotation on pod templates: sha256 of everything the pods are built from.
CHECKSUM_ANNOTATION = "queueworker.dev/config-checksum"

#: The non-root user and group the worker image runs as.
RUN_AS_USER = 10001

ROUTES_KEY = "routes.json"
ROUTES_MOUNT = "/etc/queueworker/routes"
ROUTES_FILE = f"{ROUTES_MOUNT}/{ROUTES_KEY}"

BROKER_ENV = "QUEUEWORKER_BROKER_URL"


def worker_name(qw: QueueWorker) -> str:
    """Name of the worker Deployment (and its PDB and autoscaler): a DNS label for any CR name."""
    return safe_name(qw.name, "worker")


def worker_labels(qw: QueueWorker) -> dict[str, str]:
    """Labels of the worker Deployment, its pods, PDB and autoscaler."""
    return labels(qw.name, "worker", qw.spec.queues[0])


def checksum(value: Any) -> str:
    """sha256 of the canonical JSON of `value` (sorted keys), as hex."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def controller_ref(qw: QueueWorker) -> list[dict[str, Any]]:
    """The controller ownerReference to `qw`, or none when it has no uid (rendered from a file)."""
    if not qw.uid:
        return []
    return [
        {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": qw.name,
            "uid": qw.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


def shared_refs(qws: Iterable[QueueWorker]) -> list[dict[str, Any]]:
    """Non-controller ownerReferences to every QueueWorker with a uid, sorted by name: the object
    is garbage-collected only once all of them are gone."""
    refs = [
        {"apiVersion": API_VERSION, "kind": KIND, "name": qw.name, "uid": qw.uid, "controller": False}
        for qw in sorted(qws, key=lambda q: q.name)
        if qw.uid
    ]
    return refs


def metadata(
    name: str,
    namespace: str,
    labels: Mapping[str, str],
    owner_refs: list[dict[str, Any]],
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": dict(labels)}
    if annotations:
        meta["annotations"] = dict(annotations)
    if owner_refs:
        meta["ownerReferences"] = owner_refs
    return meta


def pod_security_context() -> dict[str, Any]:
    """Pod-level settings of the "restricted" Pod Security Standard."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
        "fsGroup": RUN_AS_USER,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    """Container-level settings of the "restricted" standard, plus a read-only root filesystem."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def broker_env(settings: Settings) -> dict[str, Any]:
    """The broker URL from the namespace's Secret: never a literal in an object."""
    return {
        "name": BROKER_ENV,
        "valueFrom": {"secretKeyRef": {"name": settings.broker_secret, "key": settings.broker_secret_key}},
    }


#: A sentinel broker's master set and sentinels' password, from the same Secret (keys optional: a
#: standalone broker's Secret has neither).
SENTINEL_KEYS = {
    "QUEUEWORKER_SENTINEL_MASTER": "sentinel-master",
    "QUEUEWORKER_SENTINEL_PASSWORD": "sentinel-password",
}


def sentinel_env(settings: Settings) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "valueFrom": {"secretKeyRef": {"name": settings.broker_secret, "key": key, "optional": True}},
        }
        for name, key in SENTINEL_KEYS.items()
    ]


#: Where a pod finds the broker's CA: key `ca.crt` of the broker Secret, which a TLS broker's rediss:// URL
#: names (ssl_ca_certs). Mounted optionally, so a plaintext broker's Secret needs no such key.
BROKER_CA_DIR = "/etc/queueworker/broker-tls"
BROKER_CA_KEY = "ca.crt"


def broker_ca_volume(settings: Settings) -> dict[str, Any]:
    return {
        "name": "broker-tls",
        "secret": {
            "secretName": settings.broker_secret,
            "defaultMode": 0o440,
            "optional": True,
            "items": [{"key": BROKER_CA_KEY, "path": BROKER_CA_KEY}],
        },
    }


def broker_ca_mount() -> dict[str, Any]:
    return {"name": "broker-tls", "mountPath": BROKER_CA_DIR, "readOnly": True}


def plain(value: Any) -> Any:
    """A deep copy of user-supplied structure as plain JSON types (dict, list, scalars), so the
    object serializes anywhere and shares nothing with the spec."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def number_text(value: float) -> str:
    """A number as text every reader takes: an env var, a KEDA threshold (Go's ParseFloat) and a
    Kubernetes quantity: "30", "2.5"."""
    return str(int(value)) if value == int(value) else repr(float(value))
