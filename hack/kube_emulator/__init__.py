"""A Kubernetes API emulator for operator tests: kmock's KubernetesEmulator plus what kopf and kubectl need.

kmock stores objects verbatim. This subclass stamps `resourceVersion`, `uid`, `creationTimestamp` and
`generation` like an API server, serves the `/scale` subresource as an autoscaling/v1 Scale, and collects
garbage by ownerReferences (an object goes when every owner is gone), so deletion flows can be tested.

It also registers the QueueWorker CRD from operator/crds and writes a kubeconfig pointing at the emulator;
`python -m hack.kube_emulator PORT KUBECONFIG` serves it for trying the operator with kubectl.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import kmock

from hack.crdref import load_crd
from hack.kube_emulator.emulator import (
    CONFIGMAPS,
    DEPLOYMENTS,
    EVENTS,
    HPAS,
    PDBS,
    PODS,
    QW,
    SCALEDOBJECTS,
    VERBS,
    Emulator,
)

__all__ = [
    "CONFIGMAPS", "DEPLOYMENTS", "EVENTS", "HPAS", "PDBS", "PODS", "QW", "SCALEDOBJECTS",
    "Emulator", "register_crd", "serve", "write_kubeconfig",
]  # fmt: skip


def register_crd(emulator: kmock.KubernetesEmulator, crd: Mapping[str, Any] | None = None) -> None:
    """Make the CRD's resource discoverable, with its names and subresources, plus the built-ins."""
    emulator.resources.load_bundled()
    crd = crd or load_crd()
    spec = crd["spec"]
    names = spec["names"]
    for version in spec["versions"]:
        subresources = set((version.get("subresources") or {}).keys())
        info = kmock.ResourceInfo(
            kind=names["kind"],
            singular=names.get("singular", names["kind"].lower()),
            shortnames=names.get("shortNames", []),
            categories=names.get("categories", []),
            namespaced=spec.get("scope", "Namespaced") == "Namespaced",
            verbs=VERBS,
            subresources=subresources,
        )
        emulator.resources[kmock.resource(spec["group"], version["name"], names["plural"])] = info
        if isinstance(emulator, Emulator):
            columns = list(version.get("additionalPrinterColumns", []))
            emulator.printer_columns[(spec["group"], version["name"], names["plural"])] = columns
    for group, version, plural, kind in (("keda.sh", "v1alpha1", "scaledobjects", "ScaledObject"),):
        emulator.resources[kmock.resource(group, version, plural)] = kmock.ResourceInfo(
            kind=kind, singular=kind.lower(), namespaced=True, verbs=VERBS, subresources={"status"}
        )


def write_kubeconfig(path: Path, server: str) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "emulator",
        "clusters": [{"name": "emulator", "cluster": {"server": server}}],
        "users": [{"name": "tester", "user": {"token": "emulator-token"}}],
        "contexts": [
            {"name": "emulator", "context": {"cluster": "emulator", "user": "tester", "namespace": "default"}}
        ],
    }
    path.write_text(json.dumps(config))
    return path


async def serve(port: int, kubeconfig: Path | None) -> None:
    """Serve the emulator (CRD registered) until interrupted; for trying the operator with kubectl."""
    async with Emulator() as emulator, kmock.Server(emulator, port=port):
        register_crd(emulator)
        url = str(emulator.url).rstrip("/")
        if kubeconfig is not None:
            write_kubeconfig(kubeconfig, url)
        print(f"Kubernetes API emulator on {url}", flush=True)
        await asyncio.Event().wait()
