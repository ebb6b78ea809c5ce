"""The Prometheus that the Prometheus Operator runs in the cluster (namespace monitoring, Service
prometheus-operated), read through the API server's service proxy as `kubectl get --raw` reads it."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable
from typing import Any

from tests.e2e.cluster import Cluster, wait_for

NAMESPACE = "monitoring"
SERVICE = "prometheus-operated:web"


class Prometheus:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        raw = f"/api/v1/namespaces/{NAMESPACE}/services/{SERVICE}/proxy/api/v1/{path}{query}"
        body = json.loads(self.cluster.kubectl("get", "--raw", raw, timeout=30).stdout)
        assert body.get("status") == "success", body
        return body["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.api("query", query=promql)["result"]
        return result

    def targets(self) -> list[dict[str, Any]]:
        active: list[dict[str, Any]] = self.api("targets", state="active")["activeTargets"]
        return active

    def rule_groups(self) -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = self.api("rules")["groups"]
        return groups

    def alerts(self, name: str, state: str) -> list[dict[str, Any]]:
        return [
            a
            for a in self.api("alerts")["alerts"]
            if a["labels"].get("alertname") == name and a["state"] == state
        ]

    def wait_for(self, check: Callable[[], Any], timeout: float, what: str) -> Any:
        return wait_for(what, check, timeout, interval=3, diagnose=self.diagnose)

    def wait_for_series(self, promql: str, timeout: float) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.wait_for(lambda: self.query(promql), timeout, f"series {promql}")
        return result

    def diagnose(self) -> str:
        try:
            targets = [(t["scrapePool"], t["health"], t.get("lastError", "")) for t in self.targets()]
        except AssertionError as exc:
            return f"Prometheus did not answer: {exc}"
        return "targets: " + "\n  ".join(str(t) for t in targets)
