"""Access to the chart's Redis, run on this machine (tests/redis/chart/test_rendered.py replays the rendered
pod): it refuses every command of a client without the password, and a wrong password. (The rest of the
access checks need no Redis: tests/fast/security/test_access.py.)"""

from __future__ import annotations

import socket
import ssl
import time
from typing import Any

import redis

from tests.redis.chart.test_rendered import rendered_redis  # noqa: F401  # fixture: the chart's Redis, run here


def resp(*parts: str) -> bytes:
    """One command in the Redis protocol, as a client that skips redis-py's retries sends it."""
    out = f"*{len(parts)}\r\n"
    for part in parts:
        out += f"${len(part.encode())}\r\n{part}\r\n"
    return out.encode()


def test_rendered_redis_refuses_clients_without_the_password(rendered_redis: dict[str, Any]) -> None:  # noqa: F811
    port, password = rendered_redis["port"], rendered_redis["password"]
    good = redis.Redis(host="127.0.0.1", port=port, password=password, **rendered_redis["ssl"])
    for _ in range(200):
        try:
            good.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    good.lpush("celery", "task")
    refused = 0
    tls = ssl.create_default_context(cafile=rendered_redis["ssl"]["ssl_ca_certs"])  # TLS only, by default
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    with tls.wrap_socket(raw, server_hostname="127.0.0.1") as anonymous:
        for command in (
            ("LPUSH", "celery", "evil"),
            ("LRANGE", "celery", "0", "-1"),
            ("KEYS", "*"),
            ("CONFIG", "GET", "requirepass"),
            ("FLUSHALL",),
            ("HGETALL", "unacked"),
            ("CLIENT", "LIST"),
            ("DEBUG", "SLEEP", "0"),
            ("EVAL", "return 1", "0"),
            ("SCAN", "0"),
            ("HELLO", "3"),
            ("AUTH", "wrong"),
            ("AUTH", "default", "wrong"),
            ("AUTH", ""),
        ):
            anonymous.sendall(resp(*command))
            answer = anonymous.recv(4096)
            assert answer.startswith((b"-NOAUTH", b"-WRONGPASS", b"-ERR")), (command, answer)
            refused += 1
        for wrong in (("AUTH", password[:-1]), ("AUTH", "admin", password), ("PING",)):
            anonymous.sendall(resp(*wrong))  # still refused after failed AUTHs
            assert anonymous.recv(4096).startswith((b"-NOAUTH", b"-WRONGPASS")), wrong
    assert good.lrange("celery", 0, -1) == [b"task"], "nothing an anonymous client sent got through"
    print(f"\n[security] rendered Redis: {refused} commands refused without the password")
