"""The one module that talks to the Kubernetes API: get, list, server-side apply, delete, status, scale,
pod annotations and Events.

Credentials come from the same place kopf's login handler takes them (in-cluster service account, else
$KUBECONFIG), so the operator and kopf always act as the same identity.

`apply` is server-side apply (`application/apply-patch+yaml`) under the field manager
`queueworker-operator`, with force: the operator is the one authority on every field it renders, so a
field someone else changed (drift, a conflict) is taken back, as the merge patches of earlier versions
did; fields it does not render stay their managers'. Fields it rendered before and no longer does are
removed by the server. The builtin autoscaler writes spec.replicas through /scale under its own manager.
"""

from __future__ import annotations

import builtins
import datetime
import json
import logging
import socket
import ssl
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
import kopf

from queueworker_operator.fields import AUTOSCALER, OPERATOR

logger = logging.getLogger(__name__)

COMPONENT = "queueworker-operator"
FIELD_MANAGER = OPERATOR
MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
JSON_PATCH = "application/json-patch+json"

#: apiVersion/kind -> plural, for every kind the operator writes.
PLURALS = {
    ("apps/v1", "Deployment"): "deployments",
    ("policy/v1", "PodDisruptionBudget"): "poddisruptionbudgets",
    ("v1", "ConfigMap"): "configmaps",
    ("v1", "Pod"): "pods",
    ("v1", "Event"): "events",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "horizontalpodautoscalers",
    ("keda.sh/v1alpha1", "ScaledObject"): "scaledobjects",
    ("queueworker.dev/v1alpha1", "QueueWorker"): "queueworkers",
}

Outcome = Literal["created", "patched", "unchanged"]


class NotOurs(Exception):
    """A live object with the desired name is controlled by something else: it is never taken over."""

    def __init__(self, kind: str, namespace: str | None, name: str, owner: str) -> None:
        super().__init__(
            f"{kind} {namespace}/{name} already exists and is controlled by {owner}: "
            "rename or remove it, it is not taken over"
        )


def controller_of(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


class KubeError(Exception):
    """The API answered with an HTTP error `code` (the message is the server's, never a credential)."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        self.code = code
        self.reason = reason
        super().__init__(f"{code} {reason}: {message}")

    @property
    def retryable(self) -> bool:
        return self.code in (409, 429) or self.code >= 500


def connection_info() -> kopf.ConnectionInfo | None:
    """The operator's credentials: in-cluster service account first, then $KUBECONFIG / ~/.kube/config."""
    settings = kopf.OperatorSettings()
    return kopf.login_with_service_account(settings=settings) or kopf.login_with_kubeconfig(settings=settings)


def path_of(
    api_version: str,
    plural: str,
    namespace: str | None,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    if namespace:
        base += f"/namespaces/{namespace}"
    base += f"/{plural}"
    if name:
        base += f"/{name}"
        if subresource:
            base += f"/{subresource}"
    return base


def plural_of(obj: Mapping[str, Any]) -> str:
    key = (obj["apiVersion"], obj["kind"])
    return PLURALS.get(key) or obj["kind"].lower() + "s"


def _labelled_like(live: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """An uncontrolled live object may be adopted only if it carries the desired managed-by and instance
    labels (e.g. applied from `qw render` output)."""
    want = desired.get("metadata", {}).get("labels") or {}
    have = live.get("metadata", {}).get("labels") or {}
    keys = ("app.kubernetes.io/managed-by", "app.kubernetes.io/instance")
    return all(k in want and have.get(k) == want[k] for k in keys)


def check_ours(desired: Mapping[str, Any], live: Mapping[str, Any] | None) -> None:
    """Raise NotOurs when `live` (the object of `desired`'s name, None when absent) belongs to something
    else: another controller, or nothing at all without the operator's labels."""
    if live is None:
        return
    ours, theirs = controller_of(desired), controller_of(live)
    meta = desired["metadata"]
    if ours is not None and theirs is not None and theirs.get("uid") != ours.get("uid"):
        owner = f"{theirs.get('kind')} {theirs.get('name')}"
        raise NotOurs(desired["kind"], meta.get("namespace"), meta["name"], owner)
    if ours is not None and theirs is None and not _labelled_like(live, desired):
        raise NotOurs(desired["kind"], meta.get("namespace"), meta["name"], "nothing the operator manages")


def _ssl_context(info: kopf.ConnectionInfo) -> ssl.SSLContext | bool:
    if not info.server.startswith("https"):
        return False
    if info.insecure:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ca_data = info.ca_data.decode() if isinstance(info.ca_data, bytes) else info.ca_data
        ctx = ssl.create_default_context(cafile=info.ca_path, cadata=ca_data)
    if info.certificate_path and info.private_key_path:
        ctx.load_cert_chain(info.certificate_path, info.private_key_path)
    return ctx


@dataclass
class ApplyResult:
    outcome: Outcome
    object: dict[str, Any]


class Kube:
    """An aiohttp client of the Kubernetes API for the operator's own writes."""

    def __init__(self, info: kopf.ConnectionInfo, timeout: float = 30.0) -> None:
        self.info = info
        self.server = info.server.rstrip("/")
        headers = {"Accept": "application/json", "User-Agent": COMPONENT}
        auth = None
        if info.token:
            headers["Authorization"] = f"Bearer {info.token}"
        elif info.username and info.password:
            auth = aiohttp.BasicAuth(info.username, info.password)
        self._session = aiohttp.ClientSession(
            headers=headers,
            auth=auth,
            timeout=aiohttp.ClientTimeout(total=timeout),
            connector=aiohttp.TCPConnector(ssl=_ssl_context(info), limit=32),
        )
        self.instance = socket.gethostname()

    async def close(self) -> None:
        await self._session.close()

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: Mapping[str, str] | None = None,
        content_type: str = "application/json",
        manager: str = FIELD_MANAGER,
    ) -> dict[str, Any]:
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type} if body is not None else {}
        if method in ("POST", "PATCH"):  # every write is recorded under a manager of ours in managedFields
            params = {**(params or {}), "fieldManager": manager}
        async with self._session.request(
            method, self.server + path, data=data, params=params, headers=headers
        ) as response:
            text = await response.text()
            if response.status >= 400:
                try:
                    error = json.loads(text)  # the API's `kind: Status` object
                    reason, message = str(error.get("reason", "")), str(error.get("message", ""))
                except ValueError:
                    reason, message = response.reason or "", text[:200]
                raise KubeError(response.status, reason, message[:300])
            return json.loads(text) if text else {}

    # -- reads --------------------------------------------------------------------------------------
    async def get(
        self, api_version: str, plural: str, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        try:
            return await self.request("GET", path_of(api_version, plural, namespace, name))
        except KubeError as exc:
            if exc.code == 404:
                return None
            raise

    async def list(
        self,
        api_version: str,
        plural: str,
        namespace: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        """Objects of a kind; with `labels`, only those carrying all of them (also checked client-side)."""
        params = {"labelSelector": ",".join(f"{k}={v}" for k, v in labels.items())} if labels else None
        answer = await self.request("GET", path_of(api_version, plural, namespace), params=params)
        items = answer.get("items") or []
        if labels:
            items = [
                i
                for i in items
                if all((i.get("metadata", {}).get("labels") or {}).get(k) == v for k, v in labels.items())
            ]
        return items

    # -- writes -------------------------------------------------------------------------------------
    async def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        path = path_of(obj["apiVersion"], plural_of(obj), obj["metadata"].get("namespace"))
        return await self.request("POST", path, obj)

    async def patch(  # noqa: PLR0917
        self,
        api_version: str,
        plural: str,
        namespace: str | None,
        name: str,
        patch: Mapping[str, Any],
        subresource: str | None = None,
    ) -> dict[str, Any]:
        return await self.request(
            "PATCH",
            path_of(api_version, plural, namespace, name, subresource),
            patch,
            content_type=MERGE_PATCH,
        )

    async def delete(self, api_version: str, plural: str, namespace: str | None, name: str) -> bool:
        """Delete with background propagation; False when it was already gone."""
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}
        try:
            await self.request("DELETE", path_of(api_version, plural, namespace, name), body)
        except KubeError as exc:
            if exc.code == 404:
                return False
            raise
        return True

    async def apply(
        self,
        desired: Mapping[str, Any],
        live: Mapping[str, Any] | None = None,
        *,
        manager: str = FIELD_MANAGER,
    ) -> ApplyResult:
        """Server-side apply of `desired` (JSON is YAML) with force; `live` is the object as known before,
        None when it did not exist, and only tells the outcome."""
        meta = desired["metadata"]
        path = path_of(desired["apiVersion"], plural_of(desired), meta.get("namespace"), meta["name"])
        result = await self.request(
            "PATCH", path, desired, params={"force": "true"}, content_type=APPLY_PATCH, manager=manager
        )
        if live is None:
            return ApplyResult("created", result)
        before = (live.get("metadata") or {}).get("resourceVersion")
        changed = result.get("metadata", {}).get("resourceVersion") != before
        return ApplyResult("patched" if changed else "unchanged", result)

    async def replace_managed_fields(
        self, live: Mapping[str, Any], entries: builtins.list[dict[str, Any]]
    ) -> None:
        """Set metadata.managedFields of `live` (unless it changed since it was read), as kubectl does when
        it upgrades client-side apply's records to server-side apply's."""
        meta = live["metadata"]
        patch = [
            {"op": "test", "path": "/metadata/resourceVersion", "value": meta["resourceVersion"]},
            {"op": "replace", "path": "/metadata/managedFields", "value": entries},
        ]
        path = path_of(live["apiVersion"], plural_of(live), meta.get("namespace"), meta["name"])
        await self.request("PATCH", path, patch, content_type=JSON_PATCH)

    async def patch_status(
        self, api_version: str, plural: str, namespace: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any]:
        return await self.patch(api_version, plural, namespace, name, {"status": dict(status)}, "status")

    async def scale(  # noqa: PLR0917
        self,
        api_version: str,
        plural: str,
        namespace: str,
        name: str,
        replicas: int,
        manager: str = AUTOSCALER,
    ) -> None:
        """Set replicas through the scale subresource, applied under `manager` (the builtin autoscaler's by
        default), which then owns spec.replicas: the operator's own applies leave it out."""
        scale = {
            "apiVersion": "autoscaling/v1",
            "kind": "Scale",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": replicas},
        }
        await self.request(
            "PATCH",
            path_of(api_version, plural, namespace, name, "scale"),
            scale,
            params={"force": "true"},
            content_type=APPLY_PATCH,
            manager=manager,
        )

    async def annotate(
        self, api_version: str, plural: str, namespace: str, name: str, annotations: Mapping[str, str | None]
    ) -> None:
        patch = {"metadata": {"annotations": dict(annotations)}}
        await self.patch(api_version, plural, namespace, name, patch)

    async def event(self, involved: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        """Post a core/v1 Event about `involved` (a live object); failures are logged, never raised."""
        meta = involved.get("metadata", {})
        now = datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        namespace = meta.get("namespace") or "default"
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{meta.get('name', 'queueworker')}.{uuid.uuid4().hex[:16]}",
                "namespace": namespace,
            },
            "involvedObject": {
                "apiVersion": involved.get("apiVersion"),
                "kind": involved.get("kind"),
                "name": meta.get("name"),
                "namespace": namespace,
                "uid": meta.get("uid"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": self.instance[:128],
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            await self.create(event)
        except (KubeError, aiohttp.ClientError, TimeoutError) as exc:
            logger.warning(
                "could not post the %s Event on %s/%s: %s", reason, namespace, meta.get("name"), exc
            )
