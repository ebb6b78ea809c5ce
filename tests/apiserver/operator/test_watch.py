"""Watches that recover: the operator reaches the API server through a TCP proxy that fails every
connection it holds, and QueueWorkers created or changed afterwards are still reconciled, with at most one
re-list of QueueWorkers (a re-list happens only after a 410; re-watching resumes from the last
resourceVersion).

A blackhole keeps every connection open and forwards nothing (a stream that dies silently: only the
operator's own watch timeout can notice it); a cut closes them all (as an API server restart does).
LISTs are counted by the API server itself (`apiserver_request_total`). The operator runs cluster-wide so
that its LISTs are the only cluster-scoped ones: the namespace controller and the tests list per namespace.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from tests.support import control_plane
from tests.support.kubeapi import DEPLOYMENTS, Api
from tests.support.operator_harness import eventually
from tests.support.operator_helpers import create, manifest, patch, status
from tests.support.tcp_proxy import TcpProxy

#: The operator's API timeout in these tests (QUEUEWORKER_API_TIMEOUT, 30 s by default), its watches' too.
API_TIMEOUT = 10
#: How long a QueueWorker may wait to be reconciled after the fault: a liveness bound, not a measure.
DEADLINE = 90.0
#: How long the proxy turns new connections away after a cut (an API server restarting).
RESTART_SECONDS = 3.0
#: The resources the operator watches and counts re-lists of (QueueWorkers and its children).
WATCHED = ("queueworkers", "deployments", "poddisruptionbudgets", "configmaps", "horizontalpodautoscalers")

_SAMPLE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$", re.MULTILINE)
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def cluster_lists(server: control_plane.Server) -> dict[str, float]:
    """Cluster-scoped LIST requests the API server has answered so far, by resource (its /metrics)."""
    counts = dict.fromkeys(WATCHED, 0.0)
    for sample in _SAMPLE.finditer(server.plane.get("/metrics", timeout=10).decode()):
        labels = dict(_LABEL.findall(sample["labels"]))
        if labels.get("verb") == "LIST" and labels.get("scope") == "cluster":
            resource = labels.get("resource", "")
            if resource in counts:
                counts[resource] += float(sample["value"])
    return counts


@pytest.fixture
def proxy(
    kube_server: control_plane.Server, operator_env: dict[str, str], tmp_path: Path
) -> Iterator[TcpProxy]:
    """A proxy in front of the API server; the operator's kubeconfig names it (the server certificate has
    127.0.0.1 among its addresses, so TLS verifies through it as it does directly)."""
    proxy = TcpProxy(kube_server.plane.port).start()
    direct = kube_server.kubeconfig.read_text()
    assert kube_server.plane.server in direct
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(direct.replace(kube_server.plane.server, f"https://127.0.0.1:{proxy.port}"))
    operator_env["KUBECONFIG"] = str(kubeconfig)
    operator_env["QUEUEWORKER_API_TIMEOUT"] = str(API_TIMEOUT)
    yield proxy
    proxy.stop()


def worker_args(kube: Api, ns: str, name: str) -> list[str]:
    deployment = kube.read(DEPLOYMENTS, ns, name + "-worker")
    return [] if deployment is None else list(deployment["spec"]["template"]["spec"]["containers"][0]["args"])


async def recovers(
    fault: Callable[[TcpProxy], int],
    kube: Api,
    kube_server: control_plane.Server,
    ns: str,
    proxy: TcpProxy,
    start_operator: Callable[..., AbstractAsyncContextManager[Any]],
) -> None:
    """Start the operator, apply `fault` to every connection it holds, then create one QueueWorker and
    change another: both are reconciled, and QueueWorkers are re-listed at most once."""
    async with start_operator(namespaces=None):
        create(kube, manifest("before", ns))
        await eventually(lambda: status(kube, ns, "before").get("observedGeneration") == 1)
        lists = cluster_lists(kube_server)
        assert all(n >= 1 for n in lists.values()), f"the operator's first LISTs are not counted: {lists}"
        held = fault(proxy)
        assert held >= len(WATCHED), f"the operator held {held} connections: fewer than its watches"
        began = time.monotonic()
        create(kube, manifest("after", ns))
        patch(kube, ns, "before", {"spec": {"concurrency": 7}})
        await eventually(lambda: worker_args(kube, ns, "after"), timeout=DEADLINE, interval=0.5)
        await eventually(lambda: "7" in worker_args(kube, ns, "before"), timeout=DEADLINE, interval=0.5)
        await eventually(
            lambda: status(kube, ns, "before").get("observedGeneration") == 2, timeout=DEADLINE, interval=0.5
        )
        recovered = time.monotonic() - began
        relists = {r: n - lists[r] for r, n in cluster_lists(kube_server).items()}
        print(
            f"{fault.__name__}: {held} connections, reconciled after {recovered:.1f}s, "
            f"cluster-wide LISTs before {lists}, re-lists {relists}"
        )
        assert relists["queueworkers"] <= 1, relists
        assert all(n <= 1 for n in relists.values()), relists


async def test_a_silently_dead_watch_is_replaced(kube, kube_server, ns, proxy, start_operator):
    await recovers(TcpProxy.blackhole, kube, kube_server, ns, proxy, start_operator)


def restart(proxy: TcpProxy) -> int:
    """What an API server restart does to its clients: every connection closed, new ones turned away for
    a few seconds (the operator retries with a backoff)."""
    return proxy.cut(refuse_for=RESTART_SECONDS)


async def test_cut_connections_are_reopened(kube, kube_server, ns, proxy, start_operator):
    await recovers(restart, kube, kube_server, ns, proxy, start_operator)
