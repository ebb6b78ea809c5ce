"""The broker layer's URL forms (queueworker.broker.url): redis, rediss with redis-py's ssl_* options, kombu's
sentinel list with the master and the sentinels' password from the environment; errors hide the password."""

from __future__ import annotations

import pytest
from queueworker.broker.url import BrokerURLError, kombu_url, parse, sentinel_kwargs
from queueworker.worker.brokerconf import SENTINEL_TRANSPORT, TRANSPORT, broker_config


def test_redis_url() -> None:
    broker = parse("redis://:pw@redis.ns:6380/2", env={})
    assert (broker.scheme, broker.hosts, broker.db, broker.password, broker.tls) == (
        "redis",
        (("redis.ns", 6380),),
        2,
        "pw",
        False,
    )
    assert kombu_url(broker) == "redis://:pw@redis.ns:6380/2"
    assert "pw" not in broker.display()


def test_rediss_reads_the_ssl_options_as_redis_py_does_and_verifies_by_default() -> None:
    broker = parse(
        "rediss://:pw@h:6379/0?ssl_ca_certs=/ca.crt&ssl_certfile=/c.crt&ssl_keyfile=/c.key", env={}
    )
    assert broker.ssl_options() == {
        "ssl_ca_certs": "/ca.crt",
        "ssl_certfile": "/c.crt",
        "ssl_keyfile": "/c.key",
        "ssl_cert_reqs": "required",
    }
    assert "?" not in kombu_url(broker)
    config = broker_config(broker.url, 5.0, env={})
    assert config["broker_transport"] == TRANSPORT
    assert config["broker_use_ssl"]["ssl_ca_certs"] == "/ca.crt"
    assert config["redbeat_redis_use_ssl"]["ssl_cert_reqs"] == "required"


def test_sentinel_list_master_and_separate_passwords() -> None:
    env = {"QUEUEWORKER_SENTINEL_MASTER": "queues", "QUEUEWORKER_SENTINEL_PASSWORD": "s-pw"}
    broker = parse("sentinel://:d-pw@a:26379;sentinel://b:26380;sentinel://c/1", env=env)
    assert broker.hosts == (("a", 26379), ("b", 26380), ("c", 26379))
    assert (broker.master, broker.password, broker.sentinel_password, broker.db) == (
        "queues",
        "d-pw",
        "s-pw",
        1,
    )
    assert kombu_url(broker) == "sentinel://:d-pw@a:26379/1", "kombu gets one host: it never switches"
    assert sentinel_kwargs(broker) == {"password": "s-pw"}
    config = broker_config(broker.url, 5.0, env=env)
    assert config["broker_transport"] == SENTINEL_TRANSPORT
    options = config["queueworker_transport_options"]
    assert options["master_name"] == "queues"
    assert options["qw_sentinels"] == [["a", 26379], ["b", 26380], ["c", 26379]]
    assert options["sentinel_kwargs"]["password"] == "s-pw"
    assert config["redbeat_redis_options"]["service_name"] == "queues"
    assert "d-pw" not in broker.display() and "s-pw" not in repr(broker)


def test_sentinel_defaults_and_tls() -> None:
    broker = parse("sentinel://a:1;sentinel://b:2/0?ssl_ca_certs=/ca.crt", env={})
    assert broker.master == "mymaster" and broker.sentinel_password is None
    assert sentinel_kwargs(broker)["ssl"] is True
    assert sentinel_kwargs(broker)["ssl_ca_certs"] == "/ca.crt"


@pytest.mark.parametrize(
    "url",
    [
        "amqp://u:secret@h//",
        "secret",
        "redis://:secret@a:1;redis://b:2",
        "rediss://:secret@h/0?ssl_cert_reqs=maybe",
    ],
)
def test_unusable_urls_are_refused_without_showing_the_password(url: str) -> None:
    with pytest.raises(BrokerURLError) as info:
        parse(url, env={})
    assert "secret" not in str(info.value)
