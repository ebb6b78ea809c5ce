"""kubectl against the local cluster, as its admin: the one way hack.cluster talks to the API server once
it is up (server-side apply under the field manager `queueworker-cluster`, rollouts, waits)."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from hack.cluster.controlplane import ControlPlane

FIELD_MANAGER = "queueworker-cluster"


def kubectl(
    plane: ControlPlane, *args: str, stdin: str | None = None, timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(plane.bin / "kubectl"), f"--kubeconfig={plane.kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


def apply(plane: ControlPlane, objects: list[dict[str, Any]], what: str = "the cluster add-ons") -> None:
    """Server-side apply (large CRDs fit no last-applied annotation), taking over fields if needed."""
    text = "\n".join(json.dumps(o) for o in objects)
    out = kubectl(
        plane,
        "apply",
        "--server-side",
        "--force-conflicts",
        f"--field-manager={FIELD_MANAGER}",
        "-f",
        "-",
        stdin=text,
    )
    if out.returncode != 0:
        raise SystemExit(f"applying {what} failed:\n{out.stderr}")


def rollout(plane: ControlPlane, kind: str, namespaced_names: list[str], timeout: int) -> None:
    """Wait until each Deployment or StatefulSet `namespace/name` has rolled out; on a timeout, say
    which one and show its pods' state and the namespace's recent Events."""
    for item in namespaced_names:
        ns, name = item.split("/", 1)
        out = kubectl(plane, "-n", ns, "rollout", "status", f"{kind}/{name}", f"--timeout={timeout}s")
        if out.returncode != 0:
            pods = kubectl(plane, "-n", ns, "get", "pods", "-o", "wide").stdout
            events = kubectl(plane, "-n", ns, "get", "events", "--sort-by=.lastTimestamp").stdout
            raise SystemExit(
                f"{kind} {item} did not become ready in {timeout} s:\n{out.stdout}{out.stderr}\n"
                f"pods:\n{pods}\nevents:\n{events[-4000:]}"
            )
