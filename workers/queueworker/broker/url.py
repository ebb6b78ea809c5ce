"""The broker URL every part of QueueWorker speaks: parsed once, here, into a `Broker`.

Accepted forms:
- `redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]` (and `unix://PATH?db=N`);
- `rediss://...` (TLS), with `ssl_ca_certs`, `ssl_certfile`, `ssl_keyfile` and `ssl_cert_reqs` in the
  query string, as redis-py reads them (`ssl_cert_reqs` defaults to `required`: the server is verified);
- kombu's `sentinel://[[USER]:PASSWORD@]HOST:PORT;sentinel://HOST:PORT[/DB][?ssl_...]`: the sentinels.
  The password in the URL is the data nodes' password (as kombu reads it); the sentinels' own password
  is `QUEUEWORKER_SENTINEL_PASSWORD` (none by default) and the master set is `QUEUEWORKER_SENTINEL_MASTER`
  (default `mymaster`). Any `ssl_*` query parameter (or `ssl=true`) turns TLS on for sentinels and data
  nodes alike.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

SCHEMES = ("redis", "rediss", "unix", "sentinel")
SSL_KEYS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs")
DEFAULT_MASTER = "mymaster"
DEFAULT_SENTINEL_PORT = 26379


class BrokerURLError(ValueError):
    """A broker URL QueueWorker cannot use (the message never holds the password)."""


@dataclass(frozen=True)
class Broker:
    """A parsed broker URL. `url` is what kombu gets; `hosts` are the sentinels in sentinel mode."""

    url: str
    scheme: str
    hosts: tuple[tuple[str, int], ...] = ()
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ssl: Mapping[str, str] | None = None
    master: str = DEFAULT_MASTER
    sentinel_password: str | None = field(default=None, repr=False)

    @property
    def sentinel(self) -> bool:
        return self.scheme == "sentinel"

    @property
    def tls(self) -> bool:
        return self.ssl is not None

    def display(self) -> str:
        """The URL without any password, for logs and messages."""
        where = ";".join(f"{h}:{p}" for h, p in self.hosts) or self.url.split("://", 1)[-1].split("?")[0]
        if "@" in where:
            where = where.rsplit("@", 1)[1]
        suffix = f" master={self.master}" if self.sentinel else ""
        return f"{self.scheme}://{where}/{self.db}{suffix}"

    def ssl_options(self) -> dict[str, str]:
        """The `ssl_*` options redis-py and kombu take (empty when TLS is off)."""
        return dict(self.ssl or {})


def _query(parts: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for part in parts:
        query = urlsplit(part).query
        for key, values in parse_qs(query).items():
            found[key] = values[-1]
    return found


def _ssl_from(query: Mapping[str, str], on: bool) -> dict[str, str] | None:
    options = {k: query[k] for k in SSL_KEYS if query.get(k)}
    wanted = on or bool(options) or query.get("ssl", "").lower() in ("1", "true", "yes")
    if not wanted:
        return None
    options.setdefault("ssl_cert_reqs", "required")
    if options["ssl_cert_reqs"].lower() not in ("required", "optional", "none"):
        raise BrokerURLError(f"ssl_cert_reqs={options['ssl_cert_reqs']!r}: use required, optional or none")
    return options


def _db(path: str) -> int:
    text = path.strip("/") or "0"
    if not text.isdigit():
        raise BrokerURLError(f"database {text!r} is not a number")
    return int(text)


def parse(url: str, env: Mapping[str, str] | None = None) -> Broker:
    """Parse a broker URL (see the module docstring); BrokerURLError when QueueWorker cannot use it."""
    env = os.environ if env is None else env
    text = (url or "").strip()
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme not in SCHEMES:
        raise BrokerURLError(
            f"broker URL scheme {scheme or '(none)'!r} is not supported: use redis://, rediss:// or "
            "sentinel://HOST:PORT;sentinel://HOST:PORT"
        )
    if scheme == "unix":
        query = _query([text])
        return Broker(url=text, scheme=scheme, db=int(query.get("db", "0") or 0))
    parts = [p for p in text.split(";") if p.strip()]
    query = _query(parts)
    hosts: list[tuple[str, int]] = []
    username = password = None
    db = 0
    for part in parts:
        split = urlsplit(part.strip())
        if split.scheme.lower() != scheme:
            raise BrokerURLError(f"every ';'-separated part must be {scheme}:// (got {split.scheme}://)")
        try:
            port = split.port
        except ValueError as exc:
            raise BrokerURLError("a port in the broker URL is not a number") from exc
        default = DEFAULT_SENTINEL_PORT if scheme == "sentinel" else 6379
        hosts.append((split.hostname or "127.0.0.1", port or default))
        if split.password is not None and password is None:
            password = unquote(split.password)
            username = unquote(split.username) if split.username else None
        if split.path.strip("/"):
            db = _db(split.path)
    if scheme != "sentinel" and len(hosts) > 1:
        raise BrokerURLError("only sentinel:// URLs list several hosts")
    if "db" in query:
        db = _db(query["db"])
    sentinel = scheme == "sentinel"
    return Broker(
        url=text,
        scheme=scheme,
        hosts=tuple(hosts),
        db=db,
        username=username,
        password=password,
        ssl=_ssl_from(query, scheme == "rediss"),
        master=(env.get("QUEUEWORKER_SENTINEL_MASTER") or DEFAULT_MASTER) if sentinel else "",
        sentinel_password=(env.get("QUEUEWORKER_SENTINEL_PASSWORD") or None) if sentinel else None,
    )


def kombu_url(broker: Broker) -> str:
    """The URL for kombu: the first host only, without the query. TLS options travel as `ssl` and the
    sentinels as a transport option: given alternates, kombu switches to the next one on a connection
    error, and a switch re-reads the scheme (falling back to kombu's stock transport) and drops the
    password the first part carried."""
    if broker.scheme == "unix":
        return broker.url
    auth = ""
    if broker.password is not None:
        auth = f"{quote(broker.username or '', safe='')}:{quote(broker.password, safe='')}@"
    host, port = broker.hosts[0]
    return f"{broker.scheme}://{auth}{host}:{port}/{broker.db}"


def sentinel_kwargs(broker: Broker, **socket: Any) -> dict[str, Any]:
    """What redis-py's Sentinel (and kombu's sentinel transport) use to talk to the sentinels."""
    options: dict[str, Any] = dict(socket)
    if broker.sentinel_password:
        options["password"] = broker.sentinel_password
    if broker.tls:
        options["ssl"] = True
        options.update(broker.ssl_options())
    return options
