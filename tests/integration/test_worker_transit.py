"""A message popped by the worker's BRPOP just as Redis goes away is run, not dropped.

kombu records a delivered message in `unacked` only after BRPOP returned it; when that write fails
the stock QoS raises and the message, no longer in Redis, is lost. Ours keeps it for the worker."""

from __future__ import annotations

import json

from kombu import Connection
from queueworker.runtime import rejects

from tests.support.redis_server import RedisServer


def test_delivered_message_survives_a_broker_gone_before_it_was_recorded() -> None:
    server = RedisServer().start()
    connection = Connection(server.url, transport=rejects.Transport)
    try:
        channel = connection.default_channel
        payload = {
            "body": "W10=",
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {},
            "properties": {
                "delivery_info": {"exchange": "", "routing_key": "jobs"},
                "delivery_tag": "tag-in-transit",
                "body_encoding": "base64",
            },
        }
        message = channel.Message(json.loads(json.dumps(payload)), channel=channel)
        server.stop(kill=True)
        channel.qos.append(message, message.delivery_tag)  # the stock QoS raises ConnectionError here
        assert "tag-in-transit" in channel.qos._delivered
    finally:
        server.stop()
        connection.release()
