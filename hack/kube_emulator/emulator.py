"""The emulator itself: kmock's KubernetesEmulator with what an API server adds (see the package)."""

from __future__ import annotations

import asyncio
import copy
import datetime
import itertools
import json
import re
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp.web
import jsonpatch
import jsonpointer
import kmock

QW = kmock.resource("queueworker.dev", "v1alpha1", "queueworkers")
DEPLOYMENTS = kmock.resource("apps", "v1", "deployments")
PODS = kmock.resource("", "v1", "pods")
CONFIGMAPS = kmock.resource("", "v1", "configmaps")
PDBS = kmock.resource("policy", "v1", "poddisruptionbudgets")
EVENTS = kmock.resource("", "v1", "events")
HPAS = kmock.resource("autoscaling", "v2", "horizontalpodautoscalers")
SCALEDOBJECTS = kmock.resource("keda.sh", "v1alpha1", "scaledobjects")
VERBS = ("list", "watch", "get", "create", "patch", "update", "delete")


_TABLE_PATH = re.compile(r"^/apis/([^/]+)/([^/]+)/(?:namespaces/([^/]+)/)?([^/]+)(?:/([^/]+))?/?$")


def _now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Emulator(kmock.KubernetesEmulator):
    """KubernetesEmulator with server-stamped metadata, /scale and ownerReference garbage collection."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._counter = itertools.count(1000)
        self._last_rv = 999
        #: (group, version, plural) -> the CRD's additionalPrinterColumns, for `kubectl get` tables.
        self.printer_columns: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        #: (method, path, User-Agent) of every request served, oldest first.
        self.access_log: list[tuple[str, str, str]] = []

    def _next_rv(self) -> str:
        self._last_rv = next(self._counter)
        return str(self._last_rv)

    # -- list/watch consistency: a watch from a list's resourceVersion does not replay what the list had --
    async def _serve_list(self, request: kmock.Request) -> Any:
        payload: Any = await super()._serve_list(request)
        payload["metadata"]["resourceVersion"] = str(self._last_rv)
        resource = request.resource
        info = self._resources[resource] if resource is not None else None
        if resource is not None and info is not None and info.kind:
            payload["kind"] = f"{info.kind}List"
            payload["apiVersion"] = (
                f"{resource.group}/{resource.version}" if resource.group else resource.version
            )
        return payload

    async def _serve_version(self, request: kmock.Request) -> Any:
        payload: Any = await super()._serve_version(request)
        if str(payload.get("groupVersion", "")).startswith("/"):  # the core group is just "v1"
            payload["groupVersion"] = payload["groupVersion"][1:]
        for entry in payload.get("resources", []):
            if "/" in entry["name"]:  # subresources carry no short names or categories (as in a real server)
                entry["shortNames"], entry["categories"] = [], []
        return payload

    async def _serve_watch(self, request: kmock.Request) -> AsyncIterator[Any]:
        since = str(request.params.get("resourceVersion", ""))
        async for event in super()._serve_watch(request):
            if since.isdigit() and isinstance(event, dict) and event.get("type") == "ADDED":
                version = str(event["object"].get("metadata", {}).get("resourceVersion", ""))
                if version.isdigit() and int(version) <= int(since):
                    continue
            yield event

    # -- stamping -------------------------------------------------------------------------------------
    def _current(self, request: kmock.Request) -> dict[str, Any] | None:
        key: Any = (request.resource, request.namespace, request.name)
        if key not in self._objects or self._objects[key].deleted:
            return None
        return dict(self._objects[key].raw)

    def _json_patch_fails(self, request: kmock.Request) -> str | None:
        """Apply a JSON patch to a copy first: a failed `test` op is a 422, as on a real server."""
        current = self._current(request)
        if current is None:
            return None
        try:
            jsonpatch.apply_patch(current, request.data, in_place=False)
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
            return str(exc)
        request.data.append({"op": "add", "path": "/metadata/resourceVersion", "value": self._next_rv()})
        return None

    def _stamp(self, request: kmock.Request) -> None:
        data = request.data
        if not isinstance(data, dict):
            return
        meta = data.setdefault("metadata", {})
        if not isinstance(meta, dict):
            return
        if request.action == kmock.action.CREATE:
            meta["resourceVersion"] = self._next_rv()
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = _now()
            meta["generation"] = 1
            meta.pop("deletionTimestamp", None)
        elif request.action == kmock.action.UPDATE and request.name is not None:
            current = self._current(request)
            meta["resourceVersion"] = self._next_rv()
            meta.pop("uid", None)  # immutable
            if current is not None and request.subresource != "status":
                changed = any(
                    k not in ("metadata", "status") and current.get(k) != _merged(current.get(k), v)
                    for k, v in data.items()
                )
                if changed:
                    meta["generation"] = int(current.get("metadata", {}).get("generation", 1)) + 1

    # -- /scale -------------------------------------------------------------------------------------
    async def _scale(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        key: Any = (request.resource, request.namespace, request.name)
        if key not in self._objects or self._objects[key].deleted:
            return aiohttp.web.json_response(
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "reason": "NotFound",
                    "code": 404,
                    "message": "not found",
                },
                status=404,
            )
        if request.method.value in ("PATCH", "PUT") and isinstance(request.data, dict):
            replicas = request.data.get("spec", {}).get("replicas")
            if replicas is not None:
                async with self._lock:
                    obj = self._objects[key]
                    generation = int(obj.get("metadata", {}).get("generation", 1))
                    if obj.get("spec", {}).get("replicas") != replicas:
                        generation += 1
                    meta = {"resourceVersion": self._next_rv(), "generation": generation}
                    obj.patch({"spec": {"replicas": replicas}, "metadata": meta})
                    await self._buses[key[0]].put({"type": "MODIFIED", "object": obj.raw})
        raw = self._objects[key].raw
        status = raw.get("status", {}) or {}
        selector = status.get("selector")
        if selector is None:
            labels = raw.get("spec", {}).get("selector", {}).get("matchLabels", {})
            selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        return aiohttp.web.json_response(
            {
                "apiVersion": "autoscaling/v1",
                "kind": "Scale",
                "metadata": {
                    "name": request.name,
                    "namespace": request.namespace,
                    "resourceVersion": raw["metadata"].get("resourceVersion"),
                    "uid": raw["metadata"].get("uid"),
                },
                "spec": {"replicas": raw.get("spec", {}).get("replicas", 0)},
                "status": {"replicas": status.get("replicas", 0), "selector": selector},
            }
        )

    # -- /api/v1/namespaces (kmock cannot parse this path; kopf lists it when serving namespaces) --------
    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        table = _TABLE_PATH.match(raw_request.path)
        if table and raw_request.method == "GET" and "as=Table" in raw_request.headers.get("Accept", ""):
            group, version, namespace, plural, name = table.groups()
            columns = self.printer_columns.get((group, version, plural))
            if columns is not None and raw_request.query.get("watch") not in ("true", "1"):
                return self._table(kmock.resource(group, version, plural), namespace, name, columns)
        if raw_request.path.rstrip("/") != "/api/v1/namespaces":
            return await super().__call__(raw_request)
        objects = list(self._objects.items())
        names = {"default", *(ns for (_, ns, _), obj in objects if ns and not obj.deleted)}
        if raw_request.query.get("watch") in ("true", "1"):
            response = aiohttp.web.StreamResponse()
            await response.prepare(raw_request)
            await asyncio.sleep(float(raw_request.query.get("timeoutSeconds", "3600")))
            return response
        items = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in sorted(names)]
        return aiohttp.web.json_response(
            {
                "apiVersion": "v1",
                "kind": "NamespaceList",
                "items": items,
                "metadata": {"resourceVersion": str(self._last_rv)},
            }
        )

    def _table(
        self, resource: kmock.resource, namespace: str | None, name: str | None, columns: list[dict[str, Any]]
    ) -> aiohttp.web.StreamResponse:
        """A meta.k8s.io/v1 Table with the CRD's printer columns (what `kubectl get` shows)."""
        rows = []
        for (res, ns, nm), obj in list(self._objects.items()):
            if res == resource and not obj.deleted and ns == (namespace or ns) and nm == (name or nm):
                meta = {k: obj.raw["metadata"].get(k) for k in ("name", "namespace", "uid")}
                rows.append(
                    {
                        "cells": [nm, *(_cell(obj.raw, c) for c in columns)],
                        "object": {
                            "apiVersion": "meta.k8s.io/v1",
                            "kind": "PartialObjectMetadata",
                            "metadata": meta,
                        },
                    }
                )
        if name and not rows:
            status = {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "code": 404,
                "reason": "NotFound",
                "message": "not found",
            }
            return aiohttp.web.json_response(status, status=404)
        definitions = [
            {
                "name": c["name"],
                "type": "string" if c.get("type", "date") == "date" else c["type"],
                "format": "",
                "description": c.get("description", ""),
                "priority": 0,
            }
            for c in [{"name": "Name"}, *columns]
        ]
        return aiohttp.web.json_response(
            {
                "kind": "Table",
                "apiVersion": "meta.k8s.io/v1",
                "rows": rows,
                "metadata": {"resourceVersion": str(self._last_rv)},
                "columnDefinitions": definitions,
            }
        )

    # -- garbage collection ---------------------------------------------------------------------------
    async def _collect_garbage(self) -> None:
        async with self._lock:
            while True:
                live = [(key, obj.raw) for key, obj in self._objects.items() if not obj.deleted]
                alive = {raw.get("metadata", {}).get("uid") for _, raw in live}
                doomed = []
                for key, raw in live:
                    owners = raw.get("metadata", {}).get("ownerReferences") or []
                    if owners and not any(ref.get("uid") in alive for ref in owners):
                        doomed.append(key)
                if not doomed:
                    return
                for key in doomed:
                    raw = self._objects[key].raw
                    self._objects[key].delete()
                    await self._buses[key[0]].put({"type": "DELETED", "object": raw})

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        # kmock matches each request against every request it has kept (O(n) per request): keep only the
        # current one, and a light access log for assertions.
        del self._requests[:-1]
        self.access_log.append(
            (request.method.value, str(request.url.path), request.headers.get("User-Agent", ""))
        )
        if request.resource is not None and request.subresource == "scale" and request.name:
            return await self._scale(request)
        if request.resource is not None:
            async with self._lock:
                if request.action == kmock.action.UPDATE and request.name and isinstance(request.data, list):
                    failure = self._json_patch_fails(request)
                    if failure is not None:
                        return aiohttp.web.json_response(
                            {
                                "kind": "Status",
                                "apiVersion": "v1",
                                "status": "Failure",
                                "code": 422,
                                "reason": "Invalid",
                                "message": failure,
                            },
                            status=422,
                        )
                self._stamp(request)
        response = await super()._handle(request)
        if (
            request.resource is not None
            and request.name
            and (
                request.action == kmock.action.DELETE
                or (request.action == kmock.action.UPDATE and self._current(request) is None)
            )
        ):
            await self._collect_garbage()  # something was deleted: collect what it owned
        return response

    # -- helpers for tests ----------------------------------------------------------------------------
    def live(self, resource: kmock.resource, namespace: str | None = None) -> list[dict[str, Any]]:
        """Deep copies of the current objects of a resource (optionally in one namespace)."""
        result = []
        for (res, ns, _name), obj in list(self._objects.items()):
            if res == resource and not obj.deleted and (namespace is None or ns == namespace):
                result.append(copy.deepcopy(dict(obj.raw)))
        return sorted(result, key=lambda o: (o["metadata"].get("namespace") or "", o["metadata"]["name"]))

    def read(self, resource: kmock.resource, namespace: str | None, name: str) -> dict[str, Any] | None:
        key = (resource, namespace, name)
        if key not in self._objects or self._objects[key].deleted:
            return None
        return copy.deepcopy(dict(self._objects[key].raw))

    def versions(self, resource: kmock.resource, namespace: str | None, name: str) -> int:
        """How many versions (create + patches) an object has had."""
        key = (resource, namespace, name)
        return len(self._objects[key].history) if key in self._objects else 0

    def put_object(self, resource: kmock.resource, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Store an object directly (as another controller would), stamped."""
        stored: dict[str, Any] = copy.deepcopy(dict(obj))
        meta = stored.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta["resourceVersion"] = self._next_rv()
        meta.setdefault("creationTimestamp", _now())
        self._objects[resource, meta.get("namespace"), meta["name"]] = stored
        return stored


def _cell(raw: Mapping[str, Any], column: Mapping[str, Any]) -> Any:
    """One printer-column value: simple dotted JSONPaths, dates as ages, lists as compact JSON."""
    value: Any = raw
    for part in column["jsonPath"].strip(".").split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if column.get("type") == "date" and isinstance(value, str):
        now = datetime.datetime.now(tz=datetime.UTC)
        age = (now - datetime.datetime.fromisoformat(value)).total_seconds()
        return f"{int(age // 60)}m" if age >= 120 else f"{int(age)}s"
    return json.dumps(value, separators=(",", ":")) if isinstance(value, list | dict) else value


def _merged(current: Any, patch: Any) -> Any:
    if isinstance(current, dict) and isinstance(patch, dict):
        out = dict(current)
        for k, v in patch.items():
            if v is None:
                out.pop(k, None)
            else:
                out[k] = _merged(current.get(k), v)
        return out
    return patch
