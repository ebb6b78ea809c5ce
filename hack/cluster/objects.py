"""Small builders of the Kubernetes objects the local cluster's add-ons are made of (namespaces, accounts,
bindings, Deployments, Services, APIServices, TLS Secrets), so each add-on module says only what is its
own. Every container runs as the restricted Pod Security Standard asks."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

Obj = dict[str, Any]

RESTRICTED = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "runAsGroup": 65532,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def image(name: str) -> str:
    """An add-on's image, built by hack/addons/images.sh and loaded into the node (never pulled)."""
    return f"queueworker.local/{name}:local"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def namespace(name: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def service_account(name: str, ns: str) -> Obj:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": ns}}


def cluster_role(name: str, rules: list[Obj]) -> Obj:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name},
        "rules": rules,
    }


def binding(name: str, role: str, account: str, ns: str, *, in_namespace: str | None = None) -> Obj:
    """A ClusterRoleBinding of ClusterRole `role` to ServiceAccount ns/account, or (with
    `in_namespace`) a RoleBinding there of the Role `role`."""
    obj: Obj = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding" if in_namespace else "ClusterRoleBinding",
        "metadata": {"name": name, **({"namespace": in_namespace} if in_namespace else {})},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role" if in_namespace else "ClusterRole",
            "name": role,
        },
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": ns}],
    }
    return obj


def extension_apiserver_access(name: str, account: str, ns: str) -> list[Obj]:
    """What an extension API server needs to authenticate the API server's proxied requests and to ask
    it who may do what: the auth-delegator role and the authentication ConfigMap's reader role."""
    return [
        binding(f"{name}-auth-delegator", "system:auth-delegator", account, ns),
        binding(
            f"{name}-auth-reader",
            "extension-apiserver-authentication-reader",
            account,
            ns,
            in_namespace="kube-system",
        ),
    ]


def tls_secret(name: str, ns: str, ca: Path, cert: Path, key: Path) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": ns},
        "type": "kubernetes.io/tls",
        "data": {
            "ca.crt": b64(ca.read_bytes()),
            "tls.crt": b64(cert.read_bytes()),
            "tls.key": b64(key.read_bytes()),
        },
    }


def container(
    name: str,
    image: str,
    args: list[str],
    ports: dict[str, int],
    *,
    probe: Obj | None = None,
    mounts: dict[str, str] | None = None,
    env: dict[str, Any] | None = None,
    memory: str = "256Mi",
) -> Obj:
    out: Obj = {
        "name": name,
        "image": image,
        "imagePullPolicy": "Never",
        "args": args,
        "ports": [{"name": n, "containerPort": p} for n, p in ports.items()],
        "resources": {"requests": {"cpu": "20m", "memory": "32Mi"}, "limits": {"memory": memory}},
        "securityContext": RESTRICTED,
    }
    if probe:
        out["readinessProbe"] = {**probe, "periodSeconds": 3}
        out["livenessProbe"] = {**probe, "periodSeconds": 20, "failureThreshold": 6}
    if mounts:
        out["volumeMounts"] = [
            {"name": vol, "mountPath": path, "readOnly": vol != "tmp"} for vol, path in mounts.items()
        ]
    if env:
        out["env"] = [
            {"name": k, **({"valueFrom": v} if isinstance(v, dict) else {"value": v})} for k, v in env.items()
        ]
    return out


def deployment(name: str, ns: str, account: str, containers: list[Obj], volumes: dict[str, Obj]) -> Obj:
    labels = {"app.kubernetes.io/name": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": account,
                    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": containers,
                    "volumes": [{"name": vol, **source} for vol, source in volumes.items()],
                },
            },
        },
    }


def service(name: str, ns: str, ports: dict[str, tuple[int, int]], selector: str | None = None) -> Obj:
    """`ports`: name -> (service port, target port)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns, "labels": {"app.kubernetes.io/name": selector or name}},
        "spec": {
            "selector": {"app.kubernetes.io/name": selector or name},
            "ports": [
                {"name": n, "port": port, "targetPort": target, "protocol": "TCP"}
                for n, (port, target) in ports.items()
            ],
        },
    }


def api_service(group: str, version: str, service_name: str, ns: str, ca: Path) -> Obj:
    return {
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": {"name": f"{version}.{group}"},
        "spec": {
            "group": group,
            "version": version,
            "service": {"name": service_name, "namespace": ns, "port": 443},
            "caBundle": b64(ca.read_bytes()),
            "groupPriorityMinimum": 100,
            "versionPriority": 100,
        },
    }


def https_probe(port: str, path: str = "/readyz") -> Obj:
    return {"httpGet": {"path": path, "port": port, "scheme": "HTTPS"}}


def http_probe(port: str, path: str) -> Obj:
    return {"httpGet": {"path": path, "port": port}}
