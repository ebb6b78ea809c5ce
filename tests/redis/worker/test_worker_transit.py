"""Acks through a channel a reconnect has closed cannot stop the worker. (A message fetched just as Redis
goes away is covered by the atomic fetch: tests/redis/worker/test_worker_fetch.py.)"""

from __future__ import annotations

from kombu import Connection
from queueworker.worker import transport

from tests.support.redis_server import RedisServer


def test_ack_after_the_channel_was_closed_by_a_reconnect_leaves_the_message_for_redelivery() -> None:
    """A task that finishes after a reconnect closed its channel acks through that channel: kombu fails
    with an AttributeError that Celery treats as unrecoverable. The ack is given up; the message stays
    in `unacked` (it comes back after the visibility timeout) and nothing raises."""
    with RedisServer() as server:
        connection = Connection(server.url, transport=transport.Transport)
        channel = connection.default_channel
        payload = {
            "body": "W10=",
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {},
            "properties": {
                "delivery_info": {"exchange": "", "routing_key": "jobs"},
                "delivery_tag": "tag-late-ack",
                "body_encoding": "base64",
            },
        }
        message = channel.Message(payload, channel=channel)
        channel.qos.append(message, message.delivery_tag)
        held = dict(channel.qos._delivered)
        channel.qos._delivered.clear()  # as when restoring at close failed: Redis was down (QoS docstring)
        channel.close()
        channel.qos._delivered.update(held)
        connection.release()
        message.ack()
        assert server.client().hexists("unacked", "tag-late-ack")
        assert "tag-late-ack" not in channel.qos._delivered
