"""The e2e suite's guard, tested without a cluster (these run in `make test`): it skips without a
kubeconfig, refuses contexts and clusters that are not kind (or the local cluster of `make cluster-up`),
and says when the cluster is unreachable."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.cluster import Unavailable, connect


def kubeconfig(path: Path, contexts: dict[str, str], current: str) -> Path:
    """contexts: context name -> server URL (the cluster is named like the context)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": current,
        "clusters": [{"name": name, "cluster": {"server": url}} for name, url in contexts.items()],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": "u"}} for name in contexts],
    }
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


@pytest.fixture
def fake_api() -> Iterator[tuple[str, dict[str, Any]]]:
    """An HTTP server answering GET /api/v1/nodes with the node list in `state["nodes"]`."""
    state: dict[str, Any] = {"nodes": []}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(
                {"apiVersion": "v1", "kind": "NodeList", "metadata": {}, "items": state["nodes"]}
            ).encode()
            self.send_response(200 if self.path.startswith("/api/v1/nodes") else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", state
    server.shutdown()
    server.server_close()


def node(name: str, provider_id: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"providerID": provider_id}}


def test_no_kubeconfig_skips_with_the_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    with pytest.raises(Unavailable, match="no kubeconfig"):
        connect()


def test_a_context_that_is_not_kind_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_api: tuple[str, dict[str, Any]]
) -> None:
    url, state = fake_api
    state["nodes"] = [node("kind-control-plane", "kind://docker/x/kind-control-plane")]
    path = kubeconfig(tmp_path / "config", {"prod-eu": url, "kind-queueworker": url}, current="prod-eu")
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.delenv("QW_E2E_CONTEXT", raising=False)
    with pytest.raises(Unavailable, match="refusing kube context 'prod-eu'"):
        connect()
    monkeypatch.setenv("QW_E2E_CONTEXT", "kind-queueworker")
    assert connect().context == "kind-queueworker"


def test_a_kind_named_context_on_other_nodes_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_api: tuple[str, dict[str, Any]]
) -> None:
    url, state = fake_api
    state["nodes"] = [node("ip-10-0-0-1", "aws:///eu-west-1a/i-0abc")]
    monkeypatch.setenv(
        "KUBECONFIG",
        str(kubeconfig(tmp_path / "config", {"kind-queueworker": url}, current="kind-queueworker")),
    )
    monkeypatch.delenv("QW_E2E_CONTEXT", raising=False)
    with pytest.raises(Unavailable, match="not kind nodes"):
        connect()


def test_an_unreachable_kind_cluster_skips_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "KUBECONFIG",
        str(
            kubeconfig(
                tmp_path / "config", {"kind-queueworker": "http://127.0.0.1:9"}, current="kind-queueworker"
            )
        ),
    )
    monkeypatch.delenv("QW_E2E_CONTEXT", raising=False)
    with pytest.raises(Unavailable, match="not reachable"):
        connect()


def test_the_local_cluster_context_needs_its_labelled_node(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_api: tuple[str, dict[str, Any]]
) -> None:
    """`queueworker-local` (make cluster-up) is accepted only when its nodes carry the local label."""
    url, state = fake_api
    monkeypatch.setenv(
        "KUBECONFIG",
        str(kubeconfig(tmp_path / "config", {"queueworker-local": url}, current="queueworker-local")),
    )
    monkeypatch.delenv("QW_E2E_CONTEXT", raising=False)
    state["nodes"] = [node("prod-1", "")]
    with pytest.raises(Unavailable, match="not kind nodes"):
        connect()
    labelled = node("queueworker-node", "")
    labelled["metadata"]["labels"] = {"queueworker.dev/local-cluster": "true"}
    state["nodes"] = [labelled]
    assert connect().context == "queueworker-local"
