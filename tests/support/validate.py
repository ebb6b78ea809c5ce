"""Strict validation of the objects the project emits, for tests.

`validate_object(obj, k8s_version)` raises `InvalidObject` (an AssertionError, so pytest shows the
message) naming the object and the problem:
- built-in kinds: kubernetes-validate in strict mode (unknown fields are errors) for that version;
- KEDA (keda.sh) and prometheus-operator (monitoring.coreos.com) kinds: jsonschema against the CRD's
  openAPIV3Schema from the shared schemas directory, made strict the way the API server's strict field
  validation is (an object schema with `properties` admits no other field unless it preserves unknown
  fields); the metadata is checked as a built-in ObjectMeta;
- for every kind: metadata.name is a DNS subdomain, every label key and value (metadata, selectors, pod
  templates) is valid, and namespaced names the project derives pods from are DNS labels.

The shared directory is `../shared` next to the repository, or $QW_SHARED_DIR.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

REPO = Path(__file__).resolve().parents[2]
CRD_GROUPS = ("keda.sh", "monitoring.coreos.com")
#: Kinds whose name pods (and so hostnames) derive from: kept to a DNS label.
POD_OWNERS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job")

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


class InvalidObject(AssertionError):
    """An emitted object that a Kubernetes API server would reject."""


def shared_dir() -> Path:
    return Path(os.environ.get("QW_SHARED_DIR") or REPO.parent / "shared")


@functools.cache
def _crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> strict openAPIV3Schema, for every CRD in the shared schemas directory."""
    schemas: dict[tuple[str, str], dict[str, Any]] = {}
    directory = shared_dir() / "schemas"
    if not directory.is_dir():
        raise InvalidObject(f"no schemas directory at {directory}: set QW_SHARED_DIR to the shared folder")
    for path in sorted(directory.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = doc["spec"]["group"], doc["spec"]["names"]["kind"]
            for version in doc["spec"]["versions"]:
                schema = _strict(version["schema"]["openAPIV3Schema"])
                schemas[(f"{group}/{version['name']}", kind)] = schema
    return schemas


def _strict(schema: Any) -> Any:
    """A copy of an OpenAPI v3 schema that rejects fields it does not declare."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _strict(value) for key, value in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    if isinstance(out.get("properties"), dict):
        # "properties" maps field names to schemas: its keys are never keywords.
        out["properties"] = {name: _strict(schema["properties"][name]) for name in schema["properties"]}
    return out


def _label_maps(obj: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(obj, dict):
        for key, value in obj.items():
            here = f"{path}.{key}" if path else key
            if key in ("labels", "matchLabels") and isinstance(value, dict):
                yield here, value
            else:
                yield from _label_maps(value, here)
    elif isinstance(obj, list):
        for i, item in enumerate(obj):
            yield from _label_maps(item, f"{path}[{i}]")


def _label_key_ok(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _SUBDOMAIN.match(prefix)):
        return False
    return 0 < len(name) <= 63 and bool(_LABEL_NAME.match(name))


def _common_problems(obj: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    meta = obj.get("metadata") or {}
    name = meta.get("name")
    if not isinstance(name, str) or len(name) > 253 or not _SUBDOMAIN.match(name):
        problems.append(f"metadata.name: {name!r} is not a DNS subdomain of at most 253 characters")
    elif obj.get("kind") in POD_OWNERS and (len(name) > 63 or not _DNS_LABEL.match(name)):
        problems.append(f"metadata.name: {name!r} is not a DNS label (pods and hostnames derive from it)")
    namespace = meta.get("namespace")
    if namespace is not None and (len(namespace) > 63 or not _DNS_LABEL.match(str(namespace))):
        problems.append(f"metadata.namespace: {namespace!r} is not a DNS label")
    for path, mapping in _label_maps(obj):
        for key, value in mapping.items():
            if not _label_key_ok(str(key)):
                problems.append(f"{path}: invalid label key {key!r}")
            if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
                problems.append(f"{path}.{key}: invalid label value {value!r}")
    return problems


def _schema_problems(obj: dict[str, Any], k8s_version: str) -> list[str]:
    api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
    group = api_version.split("/")[0] if "/" in api_version else ""
    if group not in CRD_GROUPS:
        try:
            kubernetes_validate.validate(obj, k8s_version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            return [f"{'.'.join(str(p) for p in exc.path)}: {exc.message} (Kubernetes {k8s_version})"]
        except kubernetes_validate.SchemaNotFoundError:
            return [f"{api_version} {kind} is not a kind of Kubernetes {k8s_version}"]
        return []
    schema = _crd_schemas().get((api_version, kind))
    if schema is None:
        return [f"{api_version} {kind}: no CRD for it in {shared_dir() / 'schemas'}"]
    problems = [
        f"{'.'.join(str(p) for p in error.absolute_path)}: {error.message}"
        for error in jsonschema.Draft4Validator(schema).iter_errors(obj)
    ]
    # The CRD schema leaves metadata open: check it as the ObjectMeta of a built-in kind.
    probe = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": obj.get("metadata", {})}
    problems += _schema_problems(probe, k8s_version)
    return problems


def object_problems(obj: dict[str, Any], k8s_version: str) -> list[str]:
    """Every problem found with `obj`; empty when an API server of `k8s_version` would accept it."""
    if not isinstance(obj, dict) or not obj.get("apiVersion") or not obj.get("kind"):
        return ["not a Kubernetes object (apiVersion and kind are required)"]
    return _schema_problems(obj, k8s_version) + _common_problems(obj)


def describe(obj: Any) -> str:
    if not isinstance(obj, dict):
        return repr(obj)[:80]
    meta = obj.get("metadata") or {}
    return f"{obj.get('kind')} {meta.get('namespace', '')}/{meta.get('name')}"


def validate_object(obj: dict[str, Any], k8s_version: str) -> None:
    """Raise InvalidObject listing every problem with `obj` for Kubernetes `k8s_version` (e.g. "1.28.0")."""
    problems = object_problems(obj, k8s_version)
    if problems:
        listing = "\n  ".join(problems)
        raise InvalidObject(f"{describe(obj)} is invalid for Kubernetes {k8s_version}:\n  {listing}")
