"""A real Prometheus for tests: its own free port, data directory and scrape config.

    with PrometheusServer(scrape={"exporter": ["127.0.0.1:9808"]}, rule_files=[ALERTS]) as prom:
        prom.wait_for_targets_up()
        prom.query('celery_queue_length{queue_name="emails"}')   # -> list of {"metric", "value"}

Needs the `prometheus` binary (Debian package `prometheus`; `.ci/run` installs it). The scrape and rule
evaluation intervals are short (1 s by default) so tests see data within seconds.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from tests.support.redis_server import free_port
from tests.support.waiting import wait_for


class PrometheusError(RuntimeError):
    """The HTTP API answered with an error (bad query, ...)."""


class PrometheusServer:
    """Start/stop a real Prometheus scraping the given targets.

    `scrape` maps a job name to its targets ("host:port"), or to a full scrape_config dict (job_name is
    filled in) for static labels, relabelling or another metrics path.
    """

    def __init__(
        self,
        scrape: Mapping[str, Sequence[str] | Mapping[str, Any]],
        rule_files: Sequence[Path] = (),
        interval: str = "1s",
        port: int | None = None,
        workdir: Path | None = None,
    ) -> None:
        if shutil.which("prometheus") is None:
            raise RuntimeError("prometheus is not installed: apt-get install prometheus (.ci/run does it)")
        self.port = port or free_port()
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="qw-prometheus-"))
        self.interval = interval
        self.scrape = dict(scrape)
        self.rule_files = [Path(p).resolve() for p in rule_files]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> dict[str, Any]:
        jobs = []
        for name, spec in self.scrape.items():
            job = (
                {"job_name": name, **spec}
                if isinstance(spec, Mapping)
                else {"job_name": name, "static_configs": [{"targets": list(spec)}]}
            )
            jobs.append(job)
        return {
            "global": {
                "scrape_interval": self.interval,
                "scrape_timeout": self.interval,
                "evaluation_interval": self.interval,
            },
            "rule_files": [str(p) for p in self.rule_files],
            "scrape_configs": jobs,
        }

    def start(self, timeout: float = 30.0) -> PrometheusServer:
        self.dir.mkdir(parents=True, exist_ok=True)
        config = self.dir / "prometheus.yml"
        config.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        args = [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={self.dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--storage.tsdb.retention.time=1h",
            "--log.level=warn",
        ]
        with (self.dir / "prometheus.log").open("ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=self.dir)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.05)
        raise RuntimeError(f"prometheus on port {self.port} not ready after {timeout:g}s:\n{self.log()}")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def log(self) -> str:
        try:
            return (self.dir / "prometheus.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- HTTP API ----------------------------------------------------------------------------------
    def api(self, path: str, **params: str) -> Any:
        """GET /api/v1/<path>; returns `data`, raises PrometheusError on an error answer."""
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read() or b"{}")
        if body.get("status") != "success":
            raise PrometheusError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; the result list (vector or matrix results; a scalar comes back as one item)."""
        data = self.api("query", query=expr)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def query_range(self, expr: str, seconds: float = 60.0, step: str = "1s") -> list[dict[str, Any]]:
        end = time.time()
        data = self.api("query_range", query=expr, start=f"{end - seconds:.3f}", end=f"{end:.3f}", step=step)
        result: list[dict[str, Any]] = data["result"]
        return result

    def targets(self) -> list[dict[str, Any]]:
        active: list[dict[str, Any]] = self.api("targets")["activeTargets"]
        return active

    def rules(self) -> list[dict[str, Any]]:
        return [rule for group in self.api("rules")["groups"] for rule in group["rules"]]

    def wait_for(
        self, predicate: Callable[[], Any], timeout: float = 60.0, message: str = "condition"
    ) -> Any:
        return wait_for(predicate, timeout, interval=0.2, message=message)

    def wait_for_targets_up(self, timeout: float = 60.0) -> list[dict[str, Any]]:
        """Wait until every configured target has been scraped successfully."""

        def all_up() -> list[dict[str, Any]] | None:
            targets = self.targets()
            expected = sum(
                len(s)
                if not isinstance(s, Mapping)
                else sum(len(c["targets"]) for c in s.get("static_configs", []))
                for s in self.scrape.values()
            )
            up = [t for t in targets if t["health"] == "up"]
            return targets if len(up) == expected else None

        result: list[dict[str, Any]] = self.wait_for(all_up, timeout, "every target up")
        return result

    def wait_for_series(self, expr: str, timeout: float = 60.0) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.wait_for(lambda: self.query(expr), timeout, f"series of {expr}")
        return result
