"""A message popped by the worker's BRPOP just as Redis goes away is put back in its queue, not dropped.

kombu records a delivered message in `unacked` only after BRPOP returned it; when that write fails the
stock QoS raises and the message, no longer in Redis, is lost. Ours keeps it and, once Redis answers
again, puts it back at the head of its queue, marked redelivered; the worker does not run it meanwhile."""

from __future__ import annotations

import json

import pytest
from kombu import Connection
from queueworker.runtime import rejects

from tests.support.redis_server import RedisServer


def test_message_popped_as_the_broker_goes_away_goes_back_to_its_queue(tmp_path) -> None:
    server = RedisServer(workdir=tmp_path, appendonly="yes", appendfsync="always").start()
    connection = Connection(server.url, transport=rejects.Transport)
    payload = {
        "body": "W10=",
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {"task": "tasks.add"},
        "properties": {
            "delivery_info": {"exchange": "", "routing_key": "jobs"},
            "delivery_tag": "tag-in-transit",
            "body_encoding": "base64",
        },
    }
    server.client().rpush("jobs", "older")
    try:
        channel = connection.default_channel
        message = channel.Message(json.loads(json.dumps(payload)), channel=channel)
        server.stop(kill=True)
        with pytest.raises(channel.connection_errors):  # the consumer reconnects, as with the stock QoS
            channel.qos.append(message, message.delivery_tag)
        assert not channel.qos._delivered, "not handed to the worker to run now"
        assert channel.restore_stranded() == 0, "still down: kept for the next poll"
        server.start()
        with Connection(server.url, transport=rejects.Transport) as again:
            assert again.default_channel.restore_stranded() == 1
            assert again.default_channel.restore_stranded() == 0, "put back once"
        client = server.client()
        assert client.llen("jobs") == 2
        restored = json.loads(client.rpop("jobs"))  # the head of the queue: BRPOP takes it next
        assert restored["properties"]["delivery_tag"] == "tag-in-transit"
        assert restored["properties"]["delivery_info"]["redelivered"] is True
        assert client.rpop("jobs") == b"older"
    finally:
        rejects._STRANDED.clear()
        server.stop()
        connection.release()


def test_ack_after_the_channel_was_closed_by_a_reconnect_leaves_the_message_for_redelivery() -> None:
    """A task that finishes after a reconnect closed its channel acks through that channel: kombu fails
    with an AttributeError that Celery treats as unrecoverable. The ack is given up; the message stays
    in `unacked` (it comes back after the visibility timeout) and nothing raises."""
    with RedisServer() as server:
        connection = Connection(server.url, transport=rejects.Transport)
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
