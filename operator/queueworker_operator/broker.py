"""The broker as the operator reaches it: one Redis client (made on first use) and whether the last read
answered."""

from __future__ import annotations

from collections.abc import Mapping

import redis
from queueworker.broker.client import connect
from queueworker.broker.url import parse as parse_broker_url


class Broker:
    def __init__(self, url: str, env: Mapping[str, str] | None = None) -> None:
        """`url` in any scheme the broker layer takes; `env` the sentinel settings (Settings.broker_env)."""
        self.url = url
        self.env = dict(env or {})
        self.ok: bool | None = None
        self._client: redis.Redis | None = None

    def client(self) -> redis.Redis:
        if self._client is None:
            self._client = connect(
                parse_broker_url(self.url, self.env),
                timeout=5.0,
                connect_timeout=3.0,
                health_check_interval=30,
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
