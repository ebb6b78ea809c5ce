"""Pure reading of the objects the operator applies: whether a live object already holds what is desired,
and who owns which fields (metadata.managedFields, server-side apply's record).

The operator applies under the field manager `queueworker-operator` (operation Apply). Versions before
server-side apply wrote with merge patches under the same name, which the server recorded as operation
Update; `upgraded_entries` turns such an entry into the Apply entry, as `kubectl apply --server-side`
does for kubectl's client-side apply (k8s.io/client-go/util/csaupgrade), so that the next apply can drop
what the old version set and the new one does not (the `queueworker.dev/last-applied` annotation).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

#: The field manager of every apply (metadata.managedFields), as `kubectl --field-manager`.
OPERATOR = "queueworker-operator"
#: The builtin autoscaler's field manager: it owns a worker Deployment's spec.replicas (scale subresource).
AUTOSCALER = "queueworker-autoscaler"
#: The annotation the versions before server-side apply kept on every object they applied.
LEGACY_ANNOTATION = "queueworker.dev/last-applied"
REPLICAS = ("f:spec", "f:replicas")


def contains(live: Any, desired: Any) -> bool:
    """Whether `live` already has everything `desired` says (extra keys in `live` are server defaults)."""
    if isinstance(desired, dict):
        return isinstance(live, dict) and all(contains(live.get(k), v) for k, v in desired.items())
    if isinstance(desired, list):
        return (
            isinstance(live, list)
            and len(live) == len(desired)
            and all(contains(a, b) for a, b in zip(live, desired, strict=True))
        )
    if isinstance(desired, bool) or isinstance(live, bool):
        return live is desired
    if isinstance(desired, int | float) and isinstance(live, int | float):
        return live == desired
    return bool(live == desired)


def without_replicas(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The object without spec.replicas (what the operator applies when an autoscaler owns replicas)."""
    out = copy.deepcopy(dict(obj))
    if isinstance(out.get("spec"), dict):
        out["spec"].pop("replicas", None)
    return out


def _entries(obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [e for e in (obj.get("metadata") or {}).get("managedFields") or [] if isinstance(e, dict)]


def _has(fields: Any, path: tuple[str, ...]) -> bool:
    for key in path:
        if not isinstance(fields, dict) or key not in fields:
            return False
        fields = fields[key]
    return True


def owners(obj: Mapping[str, Any], path: tuple[str, ...] = REPLICAS) -> set[str]:
    """The managers that own `path` of the object itself (subresource writes such as /scale included)."""
    return {str(e.get("manager")) for e in _entries(obj) if _has(e.get("fieldsV1"), path)}


def needs_replicas_claim(obj: Mapping[str, Any]) -> bool:
    """The operator owns spec.replicas and the autoscaler does not: before the operator stops applying
    replicas, the autoscaler must own them too, or the server would reset them to the default (1)."""
    mine = {
        str(e.get("manager"))
        for e in _entries(obj)
        if not e.get("subresource") and _has(e.get("fieldsV1"), REPLICAS)
    }
    return OPERATOR in mine and AUTOSCALER not in owners(obj)


def legacy(obj: Mapping[str, Any]) -> bool:
    """Written by a version before server-side apply (its Update entry is still there)."""
    return any(
        e.get("manager") == OPERATOR and e.get("operation") == "Update" and not e.get("subresource")
        for e in _entries(obj)
    )


def union(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """The union of two fieldsV1 sets (nested dicts of `f:`/`k:`/`v:`/`i:`/`.` keys)."""
    out = copy.deepcopy(dict(a))
    for key, value in b.items():
        mine = out.get(key)
        out[key] = union(mine, value) if isinstance(mine, dict) and isinstance(value, dict) else value
    return out


def upgraded_entries(obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    """managedFields with the operator's Update entries (no subresource) merged into its Apply entry."""
    entries = copy.deepcopy(_entries(obj))
    old = [
        e
        for e in entries
        if e.get("manager") == OPERATOR and e.get("operation") == "Update" and not e.get("subresource")
    ]
    if not old:
        return entries
    applied = next(
        (
            e
            for e in entries
            if e.get("manager") == OPERATOR and e.get("operation") == "Apply" and not e.get("subresource")
        ),
        None,
    )
    if applied is None:
        applied = {**old[0], "operation": "Apply", "fieldsV1": {}}
        entries.insert(entries.index(old[0]), applied)
    for entry in old:
        applied["fieldsV1"] = union(applied.get("fieldsV1") or {}, entry.get("fieldsV1") or {})
    return [e for e in entries if not any(e is o for o in old)]


def slim(body: Mapping[str, Any]) -> dict[str, Any]:
    """A live object as the operator's cache keeps it: managedFields cut down to who the managers are
    and who owns spec.replicas (what `legacy` and `needs_replicas_claim` read), status dropped."""
    out = {k: copy.deepcopy(v) for k, v in body.items() if k not in ("status", "metadata")}
    meta = dict(body.get("metadata") or {})
    entries = []
    for e in _entries(body):
        small = {k: e[k] for k in ("manager", "operation", "subresource") if e.get(k)}
        small["fieldsV1"] = {"f:spec": {"f:replicas": {}}} if _has(e.get("fieldsV1"), REPLICAS) else {}
        entries.append(small)
    meta["managedFields"] = entries
    out["metadata"] = meta
    return out
