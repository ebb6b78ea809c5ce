"""The specs: every QueueWorker the operator serves, as the spec model parses them.

`Specs` reads kopf's index of QueueWorker bodies (complete before any handler runs, so a namespace is
never rendered from half of its QueueWorkers) and parses each body once per spec. A QueueWorker whose
spec became invalid keeps its last valid parse, so nothing it runs is touched.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping
from typing import Any

from queueworker import builders
from queueworker.api.spec import FieldError, QueueWorker, SpecError, parse_manifest

Key = tuple[str, str]
#: Annotation on a QueueWorker: its last valid spec (compact JSON), so that after a restart an update
#: to an invalid spec still leaves the shared objects (routes, beat entries) as they were.
LAST_VALID = "queueworker.dev/last-valid-spec"


def summary(body: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a QueueWorker body the catalog needs (what the index stores)."""
    meta = body.get("metadata", {})
    kept = {
        k: meta[k]
        for k in ("name", "namespace", "uid", "generation", "labels", "deletionTimestamp")
        if meta.get(k) is not None
    }
    last_valid = (meta.get("annotations") or {}).get(LAST_VALID)
    if last_valid is not None:
        kept["annotations"] = {LAST_VALID: last_valid}
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": kept,
        "spec": body.get("spec"),
    }


def spec_text(spec: Any) -> str:
    return json.dumps(spec, sort_keys=True, separators=(",", ":"))


def parse(body: Mapping[str, Any]) -> QueueWorker:
    """The spec model's view of a body, plus what builders cannot build; raises SpecError."""
    manifest = summary(body)
    manifest["metadata"] = {
        k: v for k, v in manifest["metadata"].items() if k not in ("deletionTimestamp", "annotations")
    }
    qw = parse_manifest(manifest, manifest["metadata"].get("namespace") or "default")
    problems = [p if isinstance(p, FieldError) else FieldError(*p) for p in builders.problems(qw)]
    if problems:
        raise SpecError(problems)
    return qw


class Specs:
    """Parsed QueueWorkers, from kopf's index of bodies by namespace."""

    def __init__(self) -> None:
        self.index: Mapping[str, Iterable[Mapping[str, Any]]] = {}
        #: Set by the first resource handler: kopf runs handlers only once its indexes are full, so from
        #: then on every QueueWorker (and every child, in the cluster's cache) is known. Loops wait for it.
        self.ready = asyncio.Event()
        self._parsed: dict[Key, tuple[str, QueueWorker | SpecError]] = {}
        self._good: dict[Key, QueueWorker] = {}

    def parse(self, body: Mapping[str, Any]) -> QueueWorker:
        """Parse (cached per uid and spec); a valid result becomes the last known good one."""
        meta = body.get("metadata", {})
        key = (meta.get("namespace") or "default", meta.get("name", ""))
        parts = [meta.get("uid"), meta.get("generation"), meta.get("labels"), body.get("spec")]
        fingerprint = json.dumps(parts, sort_keys=True, default=str)
        cached = self._parsed.get(key)
        if cached is None or cached[0] != fingerprint:
            try:
                result: QueueWorker | SpecError = parse(body)
            except SpecError as exc:
                result = exc
            cached = (fingerprint, result)
            self._parsed[key] = cached
        if isinstance(cached[1], SpecError):
            raise cached[1]
        self._good[key] = cached[1]
        return cached[1]

    def last_good(self, namespace: str, name: str, uid: str | None) -> QueueWorker | None:
        qw = self._good.get((namespace, name))
        return qw if qw is not None and qw.uid == uid else None

    def _recorded(self, body: Mapping[str, Any]) -> QueueWorker | None:
        """The last valid spec recorded on the object (after a restart, memory has none)."""
        meta = body.get("metadata", {})
        text = (meta.get("annotations") or {}).get(LAST_VALID)
        if not text:
            return None
        try:
            qw = parse({**body, "spec": json.loads(text)})
        except (ValueError, SpecError):
            return None
        self._good[(meta.get("namespace") or "default", meta.get("name", ""))] = qw
        return qw

    def is_invalid(self, namespace: str, name: str) -> bool:
        cached = self._parsed.get((namespace, name))
        return cached is not None and isinstance(cached[1], SpecError)

    def namespace(self, namespace: str) -> list[QueueWorker]:
        """The QueueWorkers of a namespace that are not being deleted: valid ones, or their last good."""
        result = []
        for body in list(self.index.get(namespace, ())):
            meta = body.get("metadata", {})
            if meta.get("deletionTimestamp"):
                continue
            try:
                result.append(self.parse(body))
            except SpecError:
                good = self.last_good(namespace, meta.get("name", ""), meta.get("uid"))
                good = good or self._recorded(body)
                if good is not None:
                    result.append(good)
        return sorted(result, key=lambda q: q.name)

    def bodies(self, namespace: str) -> list[Mapping[str, Any]]:
        """The namespace's QueueWorker bodies (as indexed) that are not being deleted."""
        bodies = list(self.index.get(namespace, ()))
        return [b for b in bodies if not b.get("metadata", {}).get("deletionTimestamp")]

    def namespaces(self) -> list[str]:
        return sorted(ns for ns in list(self.index.keys()) if ns)

    def all(self) -> list[QueueWorker]:
        return [qw for ns in self.namespaces() for qw in self.namespace(ns)]

    def forget(self, namespace: str, name: str) -> None:
        self._parsed.pop((namespace, name), None)
        self._good.pop((namespace, name), None)
