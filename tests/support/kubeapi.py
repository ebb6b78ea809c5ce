"""A small synchronous client of a real API server for tests: read, list, create, patch and delete, as the
admin of the test control plane (client certificate), with kept-alive connections (urllib3)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import urllib3

MERGE = "application/merge-patch+json"


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None = None, name: str | None = None, sub: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if namespace and self.namespaced:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}" + (f"/{sub}" if sub else "")
        return base


QW = Resource("queueworker.dev", "v1alpha1", "queueworkers")
DEPLOYMENTS = Resource("apps", "v1", "deployments")
REPLICASETS = Resource("apps", "v1", "replicasets")
PDBS = Resource("policy", "v1", "poddisruptionbudgets")
CONFIGMAPS = Resource("", "v1", "configmaps")
PODS = Resource("", "v1", "pods")
EVENTS = Resource("", "v1", "events")
NAMESPACES = Resource("", "v1", "namespaces", namespaced=False)
HPAS = Resource("autoscaling", "v2", "horizontalpodautoscalers")
SCALEDOBJECTS = Resource("keda.sh", "v1alpha1", "scaledobjects")


class ApiError(AssertionError):
    def __init__(self, status: int, method: str, path: str, body: Any) -> None:
        self.status = status
        super().__init__(f"{method} {path}: {status} {body}")


class Api:
    def __init__(self, server: str, ca: Path, cert: Path, key: Path) -> None:
        self.server = server.rstrip("/")
        self._http = urllib3.PoolManager(
            cert_reqs="CERT_REQUIRED", ca_certs=str(ca), cert_file=str(cert), key_file=str(key), maxsize=4
        )

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        params: Mapping[str, str] | None = None,
    ) -> tuple[int, Any]:
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body).encode()
        url = self.server + path
        if params:
            url += "?" + urlencode(params)
        response = self._http.request(method, url, body=data, headers=headers, timeout=30.0)
        text = response.data.decode()
        return response.status, (json.loads(text) if text else None)

    def text(self, path: str) -> str:
        """A GET whose answer is not JSON (a proxied /metrics, a log), as text."""
        response = self._http.request("GET", self.server + path, timeout=30.0)
        if response.status >= 300:
            raise ApiError(response.status, "GET", path, response.data.decode(errors="replace"))
        return str(response.data.decode())

    def call(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        status, answer = self.request(method, path, body, **kwargs)
        if status >= 300:
            raise ApiError(status, method, path, answer)
        return answer

    def read(self, resource: Resource, namespace: str | None, name: str) -> dict[str, Any] | None:
        status, answer = self.request("GET", resource.path(namespace, name))
        if status == 404:
            return None
        if status >= 300:
            raise ApiError(status, "GET", resource.path(namespace, name), answer)
        return dict(answer)

    def live(
        self, resource: Resource, namespace: str | None = None, labels: Mapping[str, str] | None = None
    ) -> list[dict[str, Any]]:
        params = {"labelSelector": ",".join(f"{k}={v}" for k, v in labels.items())} if labels else None
        return list(self.call("GET", resource.path(namespace), params=params).get("items") or [])

    def create(self, resource: Resource, obj: Mapping[str, Any]) -> dict[str, Any]:
        namespace = (obj.get("metadata") or {}).get("namespace")
        return dict(self.call("POST", resource.path(namespace), obj))

    def patch(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        patch: Any,
        sub: str | None = None,
        content_type: str = MERGE,
    ) -> dict[str, Any]:
        path = resource.path(namespace, name, sub)
        return dict(self.call("PATCH", path, patch, content_type=content_type))

    def delete(self, resource: Resource, namespace: str | None, name: str) -> bool:
        status, answer = self.request("DELETE", resource.path(namespace, name))
        if status == 404:
            return False
        if status >= 300:
            raise ApiError(status, "DELETE", resource.path(namespace, name), answer)
        return True
