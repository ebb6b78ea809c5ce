"""The installed operator as bench/scale sees it: its pod, its process on this machine (the local
cluster's node is this machine, so the container's process is in /proc), its resident memory over time,
and its own /metrics through the API server's service proxy."""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.kubeapi import PODS, Api

SELECTOR = {"app.kubernetes.io/component": "operator", "app.kubernetes.io/name": "queueworker"}
PAGE = os.sysconf("SC_PAGE_SIZE")


def operator_pod(api: Api, namespace: str) -> dict[str, Any] | None:
    """The running, ready operator pod of the release in `namespace` (None while there is none)."""
    for pod in api.live(PODS, namespace, labels=SELECTOR):
        if pod["metadata"].get("deletionTimestamp"):
            continue
        conditions = {c["type"]: c["status"] for c in (pod.get("status") or {}).get("conditions") or []}
        if conditions.get("Ready") == "True":
            return pod
    return None


def pid_of(pod_uid: str) -> int | None:
    """The main process of the pod with `pod_uid` (its cgroup path names the pod), or None."""
    marker = "pod" + pod_uid
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cgroup = (entry / "cgroup").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker in cgroup.replace("_", "-") and b"queueworker_operator" in cmdline:
            found.append(int(entry.name))
    return min(found) if found else None


def rss_bytes(pid: int) -> int | None:
    try:
        return int((Path(f"/proc/{pid}/statm").read_text().split())[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return None


def cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


@dataclass
class Memory:
    """Samples one process's resident memory every `interval` seconds in a thread."""

    pid: int
    interval: float = 0.5
    samples: list[tuple[float, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = rss_bytes(self.pid)
            if rss is not None:
                self.samples.append((time.time(), rss))
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def peak(self, start: float = 0.0, end: float = float("inf")) -> int:
        return max((rss for t, rss in self.samples if start <= t < end), default=0)

    def median(self, start: float, end: float) -> int:
        values = sorted(rss for t, rss in self.samples if start <= t < end)
        return values[len(values) // 2] if values else 0


SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$")


def scrape(api: Api, namespace: str, service: str, port: str = "metrics") -> dict[str, float]:
    """The operator's /metrics through the API server's service proxy: each series name's value summed
    over its label sets."""
    text = api.text(f"/api/v1/namespaces/{namespace}/services/http:{service}:{port}/proxy/metrics")
    totals: dict[str, float] = {}
    for line in text.splitlines():
        match = SAMPLE.match(line.strip())
        if match is None:
            continue
        try:
            totals[match.group(1)] = totals.get(match.group(1), 0.0) + float(match.group(3))
        except ValueError:
            continue
    return totals
