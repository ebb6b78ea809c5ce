"""The platform's kombu transport, the same on every broker scheme: one Channel (channel.py: atomic fetch,
malformed-message guard, durable publishes, sentinel discovery), one QoS (qos.py: holder-checked acks,
the sweep), the guard (guard.py) and the durable publish policy (durable.py).

make_app sets `broker_transport` to `Transport` (redis://, rediss://, unix://) or `SentinelTransport`
(sentinel://); kombu gets one host (brokerconf.py: the sentinels travel as a transport option, so kombu
never switches to an alternate URL, which would bring back its stock transport).
"""

from __future__ import annotations

from kombu.transport import redis as kombu_redis

from queueworker.worker.transport.channel import Channel
from queueworker.worker.transport.guard import Consumer
from queueworker.worker.transport.qos import QoS

__all__ = ["Channel", "Consumer", "QoS", "SentinelTransport", "Transport"]


class Transport(kombu_redis.Transport):
    Channel = Channel
    qw_sentinel = False


class SentinelTransport(kombu_redis.SentinelTransport):
    Channel = Channel
    qw_sentinel = True
