"""The Kubernetes binaries, built by hack/k8s/build.sh from the Go module proxy and cached outside the
clone (cold: minutes per binary on 2 cores; warm: a second)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "hack" / "k8s" / "build.sh"


def cache_dir() -> Path:
    base = os.environ.get("QW_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "queueworker"
    )
    return Path(base)


def release() -> str:
    for line in (ROOT / "hack" / "k8s" / "go.mod").read_text().splitlines():
        words = line.split()
        if "k8s.io/kubernetes" in words:
            return words[-1]
    raise RuntimeError("hack/k8s/go.mod names no k8s.io/kubernetes version")


class BuildError(RuntimeError):
    """The binaries could not be built; the message says why."""


def ensure(*names: str) -> Path:
    """Build (or find cached) `names`; return the directory that holds them."""
    if shutil.which("go") is None:
        raise BuildError("no `go` on PATH: the Kubernetes binaries are built from Go modules (Go 1.25+)")
    print(f"hack/k8s/build.sh {' '.join(names)} (cached in {cache_dir()})", file=sys.stderr, flush=True)
    result = subprocess.run(
        ["bash", str(BUILD), *names], stdout=subprocess.PIPE, stderr=sys.stderr, text=True, check=False
    )
    if result.returncode != 0:
        raise BuildError(f"hack/k8s/build.sh {' '.join(names)} failed (exit {result.returncode}); see above")
    return Path(result.stdout.strip().splitlines()[-1])
