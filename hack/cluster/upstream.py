"""What the add-ons' own modules ship, read from the Go module cache at cluster-up time: their CRDs and
the RBAC roles generated from their code (controller-gen's role.yaml). Nothing of theirs is committed
here; the versions are the ones hack/addons/build.sh pins and builds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from queueworker.api.kubeyaml import KubeLoader

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "hack" / "addons" / "build.sh"

#: Module-relative paths of what the local cluster applies from each module.
KEDA_CRDS = "config/crd/bases"
KEDA_OPERATOR_ROLE = "config/rbac/role.yaml"
PROMETHEUS_OPERATOR_CRDS = "example/prometheus-operator-crd"
PROMETHEUS_OPERATOR_ROLE = "example/rbac/prometheus-operator/prometheus-operator-cluster-role.yaml"


def source(name: str) -> Path:
    """The module directory of `name` (keda or prometheus-operator), downloaded if needed."""
    out = subprocess.run(["bash", str(BUILD), "--source", name], capture_output=True, text=True, check=False)
    if out.returncode != 0 or not out.stdout.strip():
        print(out.stderr, file=sys.stderr)
        raise SystemExit(f"hack/addons/build.sh --source {name} failed (exit {out.returncode})")
    return Path(out.stdout.strip().splitlines()[-1])


def documents(path: Path) -> list[dict[str, Any]]:
    """Every YAML document in `path` (a file, or each *.yaml of a directory, sorted)."""
    files = sorted(path.glob("*.yaml")) if path.is_dir() else [path]
    docs: list[dict[str, Any]] = []
    for file in files:
        # As kubectl reads them: a plain `=` is a string (PyYAML's YAML 1.1 would make it a `value` tag).
        text = file.read_text(encoding="utf-8")
        docs.extend(d for d in yaml.load_all(text, Loader=KubeLoader) if d)
    return docs


def crds(name: str, directory: str) -> list[dict[str, Any]]:
    return [d for d in documents(source(name) / directory) if d.get("kind") == "CustomResourceDefinition"]


def cluster_role(name: str, path: str, role_name: str) -> dict[str, Any]:
    """The ClusterRole a module generates for its controller, renamed for this cluster."""
    roles = [d for d in documents(source(name) / path) if d.get("kind") == "ClusterRole"]
    if len(roles) != 1:
        raise SystemExit(f"{name}: expected one ClusterRole in {path}, found {len(roles)}")
    role = roles[0]
    return {
        "apiVersion": role["apiVersion"],
        "kind": "ClusterRole",
        "metadata": {"name": role_name},
        "rules": role["rules"],
    }
