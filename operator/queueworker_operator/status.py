"""QueueWorker status: the fields `kubectl get qw` and /scale read, and the conditions Ready, Autoscaling and
BrokerReachable.

Several writers (the reconcile handlers, the Deployment watcher, the autoscaler) update parts of one
status. `StatusKeeper` merges each update into the last status it knows and patches only when something
changed, so a quiet cluster sees no status writes. A condition's lastTransitionTime moves only when its
status flips. Nothing here ever holds a credential: messages are built from names and numbers.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from queueworker.api.spec import API_VERSION, PLURAL

from queueworker_operator.kube import Kube, KubeError

logger = logging.getLogger(__name__)

CONDITION_TYPES = ("Ready", "Autoscaling", "BrokerReachable")
Key = tuple[str, str]


@dataclass(frozen=True)
class Cond:
    """A condition to set: status True/False, a CamelCase reason and a human message."""

    ok: bool
    reason: str
    message: str


def now_iso() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_conditions(
    previous: list[dict[str, Any]] | None, updates: Mapping[str, Cond], now: str, generation: int | None
) -> list[dict[str, Any]]:
    """Previous conditions with `updates` applied, in CONDITION_TYPES order, other types kept after."""
    by_type = {c.get("type"): dict(c) for c in previous or [] if isinstance(c, dict)}
    for type_, cond in updates.items():
        status = "True" if cond.ok else "False"
        old = by_type.get(type_)
        changed = old is None or old.get("status") != status
        new = {
            "type": type_,
            "status": status,
            "reason": cond.reason,
            "message": cond.message[:1024],
            "lastTransitionTime": now if changed or old is None else old.get("lastTransitionTime", now),
        }
        if generation is not None:
            new["observedGeneration"] = generation
        elif old is not None and "observedGeneration" in old:
            new["observedGeneration"] = old["observedGeneration"]
        by_type[type_] = new
    ordered = [by_type.pop(t) for t in CONDITION_TYPES if t in by_type]
    return ordered + list(by_type.values())


def merged_status(
    previous: Mapping[str, Any],
    fields: Mapping[str, Any],
    conditions: Mapping[str, Cond],
    now: str,
    generation: int | None = None,
) -> dict[str, Any]:
    """`previous` with `fields` set (None removes a field) and `conditions` merged."""
    status = copy.deepcopy(dict(previous))
    for key, value in fields.items():
        if value is None:
            status.pop(key, None)
        else:
            status[key] = value
    if conditions:
        status["conditions"] = merge_conditions(status.get("conditions"), conditions, now, generation)
    return status


def status_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The merge patch of .status from `old` to `new` (conditions as a whole list)."""
    patch: dict[str, Any] = {key: None for key in old if key not in new}
    patch.update({key: value for key, value in new.items() if old.get(key) != value})
    return patch


def condition(status: Mapping[str, Any], type_: str) -> dict[str, Any] | None:
    for cond in status.get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return None


class StatusKeeper:
    """The last known status of each QueueWorker, and the only writer of QueueWorker status."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self._known: dict[Key, tuple[str | None, dict[str, Any]]] = {}
        self._locks: dict[Key, asyncio.Lock] = {}

    def seed(self, namespace: str, name: str, uid: str | None, status: Mapping[str, Any] | None) -> None:
        """Learn the status from a body when nothing newer is known (first sight, or a new uid)."""
        known = self._known.get((namespace, name))
        if known is None or known[0] != uid:
            self._known[(namespace, name)] = (uid, copy.deepcopy(dict(status or {})))

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        known = self._known.get((namespace, name))
        return copy.deepcopy(known[1]) if known else {}

    def forget(self, namespace: str, name: str) -> None:
        self._known.pop((namespace, name), None)
        self._locks.pop((namespace, name), None)

    async def update(
        self,
        namespace: str,
        name: str,
        *,
        fields: Mapping[str, Any] | None = None,
        conditions: Mapping[str, Cond] | None = None,
        generation: int | None = None,
    ) -> bool:
        """Merge and write; True when a patch was sent. A vanished QueueWorker is forgotten quietly."""
        key = (namespace, name)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            if key not in self._known:  # never seen (e.g. a Deployment event before the resume handler)
                body = await self.kube.get(API_VERSION, PLURAL, namespace, name)
                if body is None:
                    return False
                self.seed(namespace, name, body["metadata"].get("uid"), body.get("status"))
            uid, old = self._known[key]
            new = merged_status(old, fields or {}, conditions or {}, now_iso(), generation)
            patch = status_patch(old, new)
            if not patch:
                return False
            try:
                await self.kube.patch_status(API_VERSION, PLURAL, namespace, name, patch)
            except KubeError as exc:
                if exc.code == 404:
                    self._known.pop(key, None)
                    return False
                raise
            self._known[key] = (uid, new)
            return True
