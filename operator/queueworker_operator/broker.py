"""The broker as the operator reaches it: one Redis client (made on first use) and whether the last probe
answered."""

from __future__ import annotations

import redis


class Broker:
    def __init__(self, url: str) -> None:
        self.url = url
        self.ok: bool | None = None
        self._client: redis.Redis | None = None

    def client(self) -> redis.Redis:
        if self._client is None:
            self._client = redis.Redis.from_url(
                self.url, socket_timeout=5.0, socket_connect_timeout=3.0, health_check_interval=30
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
