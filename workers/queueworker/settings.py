"""The operator's configuration: the one place that reads its QUEUEWORKER_* environment variables.

`qw render` reads the same settings, so what it prints is what the operator creates.
The Redis URL may carry a password: it is never logged, put in a status, an Event or an object.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields

DEFAULT_IMAGE = "queueworker/worker:0.1.0"


class ConfigError(ValueError):
    """A QUEUEWORKER_* variable has a value the operator cannot use."""


@dataclass(frozen=True)
class Settings:
    #: QUEUEWORKER_REDIS_URL: the broker the operator probes and syncs beat entries into.
    redis_url: str = "redis://localhost:6379/0"
    #: QUEUEWORKER_DEFAULT_IMAGE: worker image for QueueWorkers without spec.image, and the beat image.
    default_image: str = DEFAULT_IMAGE
    #: QUEUEWORKER_IMAGE_PULL_POLICY
    image_pull_policy: str = "IfNotPresent"
    #: QUEUEWORKER_BROKER_SECRET / _KEY: Secret (in each QueueWorker's namespace) holding the broker URL.
    broker_secret: str = "queueworker-broker"  # noqa: S105 (a Secret name)
    broker_secret_key: str = "url"  # noqa: S105 (a key name)
    #: QUEUEWORKER_AUTOSCALE_INTERVAL: seconds between autoscaler ticks.
    autoscale_interval: float = 5.0
    #: QUEUEWORKER_DRIFT_INTERVAL: seconds between drift-correcting re-applies.
    drift_interval: float = 60.0
    #: QUEUEWORKER_API_TIMEOUT: seconds the operator waits on one API request before it gives up and
    #: retries. A watch request too: the API server ends a live one 5 s sooner, so only one that died
    #: silently hits it, and the next resumes from the last resourceVersion (no re-list). The cost is one
    #: watch request per watched resource every API_TIMEOUT - 5 seconds. Whole seconds, at least 10.
    api_timeout: int = 30
    #: QUEUEWORKER_PROMETHEUS_URL: where KEDA's prometheus trigger queries (mode keda).
    prometheus_url: str = "http://prometheus-operated.monitoring.svc:9090"
    #: QUEUEWORKER_WORKER_METRICS_PORT: the port worker pods serve task metrics on.
    worker_metrics_port: int = 9809
    #: QUEUEWORKER_METRICS_PORT: the operator's own /metrics port.
    metrics_port: int = 9810
    #: QUEUEWORKER_ROUTES_CONFIGMAP: the per-namespace routes ConfigMap.
    routes_configmap: str = "queueworker-routes"
    #: QUEUEWORKER_BEAT_NAME: the per-namespace beat Deployment.
    beat_name: str = "queueworker-beat"
    #: QUEUEWORKER_SENTINEL_MASTER / _PASSWORD: a sentinel:// broker's master set and sentinels' password.
    sentinel_master: str = "mymaster"
    sentinel_password: str = ""

    def broker_env(self) -> dict[str, str]:
        """The sentinel variables as the broker layer's parse() reads them."""
        return {
            "QUEUEWORKER_SENTINEL_MASTER": self.sentinel_master,
            "QUEUEWORKER_SENTINEL_PASSWORD": self.sentinel_password,
        }

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        problems: list[str] = []
        for f in fields(cls):
            var = f"QUEUEWORKER_{f.name.upper()}"
            raw = env.get(var)
            if raw is None or raw == "":
                continue
            default = f.default
            try:
                if isinstance(default, bool):
                    values[f.name] = raw.lower() in ("1", "true", "yes")
                elif isinstance(default, int):
                    values[f.name] = int(raw)
                elif isinstance(default, float):
                    values[f.name] = float(raw)
                else:
                    values[f.name] = raw
            except ValueError:
                problems.append(f"{var}: expected a {type(default).__name__}, got {raw!r}")
        settings = cls(**values)  # type: ignore[arg-type]
        if settings.autoscale_interval <= 0:
            problems.append("QUEUEWORKER_AUTOSCALE_INTERVAL: must be > 0 seconds")
        if settings.drift_interval <= 0:
            problems.append("QUEUEWORKER_DRIFT_INTERVAL: must be > 0 seconds")
        if settings.api_timeout < 10:
            problems.append("QUEUEWORKER_API_TIMEOUT: must be >= 10 seconds")
        if settings.image_pull_policy not in ("Always", "IfNotPresent", "Never"):
            problems.append("QUEUEWORKER_IMAGE_PULL_POLICY: must be one of Always, IfNotPresent, Never")
        if problems:
            raise ConfigError("; ".join(problems))
        return settings
