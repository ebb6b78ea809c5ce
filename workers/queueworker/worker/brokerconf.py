"""The Celery settings a broker URL becomes (make_app): the platform's transport on every scheme, TLS
options, the sentinel master and the sentinels' own credentials, and redbeat's store on the same broker.
The URL is parsed by the broker layer (queueworker.broker.url); kombu gets it without its query."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from queueworker.broker.url import Broker, kombu_url, parse, sentinel_kwargs

#: The platform's transports (worker/transport), by import path as Celery's broker_transport takes them.
TRANSPORT = "queueworker.worker.transport:Transport"
SENTINEL_TRANSPORT = "queueworker.worker.transport:SentinelTransport"
#: The broker URL as given (with its ssl_* query), kept in the app's conf for the runtime's own client.
URL_KEY = "queueworker_broker_url"


def broker_config(url: str, socket_timeout: float, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """broker_url, broker_transport, broker_use_ssl, the sentinel transport options and redbeat's."""
    broker = parse(url, env)
    config: dict[str, Any] = {
        URL_KEY: url,
        "broker_url": kombu_url(broker),
        "broker_transport": SENTINEL_TRANSPORT if broker.sentinel else TRANSPORT,
        "broker_use_ssl": broker.ssl_options() or None,
    }
    transport: dict[str, Any] = {}
    if broker.sentinel:
        transport["master_name"] = broker.master
        transport["qw_sentinels"] = [list(h) for h in broker.hosts]
        transport["sentinel_kwargs"] = sentinel_kwargs(
            broker, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout
        )
    config["queueworker_transport_options"] = transport
    config.update(redbeat_config(broker, socket_timeout))
    return config


def redbeat_config(broker: Broker, socket_timeout: float) -> dict[str, Any]:
    options: dict[str, Any] = {"socket_timeout": socket_timeout, "retry_period": 60}
    ssl = broker.ssl_options() or None
    if not broker.sentinel:
        options.update(socket_keepalive=True, health_check_interval=max(1.0, min(socket_timeout, 10.0)))
        return {
            "redbeat_redis_url": kombu_url(broker),
            "redbeat_redis_options": options,
            "redbeat_redis_use_ssl": ssl,
        }
    options.update(
        sentinels=list(broker.hosts),
        service_name=broker.master,
        db=broker.db,
        password=broker.password,
        sentinel_kwargs=sentinel_kwargs(broker, socket_timeout=socket_timeout),
    )
    if broker.username:
        options["username"] = broker.username
    return {
        "redbeat_redis_url": "redis-sentinel://",
        "redbeat_redis_options": options,
        "redbeat_redis_use_ssl": ssl,
    }
