"""Names shared by every component that reads or writes Redis: one place, so they never drift.

Celery's own keys (queues, priority lists, `unacked`, `unacked_index`, `_kombu.binding.*`) are kombu's;
everything QueueWorker adds lives under the `queueworker:` prefix.
"""

from __future__ import annotations

#: Message header carrying the publish time (float, Unix seconds), stamped by make_app apps on publish.
PUBLISHED_HEADER = "qw_published_at"

#: Kombu's Redis priority steps used by Celery: the list `q` plus `q\x06\x16{N}` for N in these.
PRIORITY_STEPS = (3, 6, 9)
PRIORITY_SEP = "\x06\x16"

#: Kombu's hash of delivered-but-unacked messages (delivery tag -> JSON [message, exchange, routing_key]).
UNACKED_HASH = "unacked"
UNACKED_INDEX = "unacked_index"
#: Kombu's binding sets, one per exchange; members are "routing_key\x06\x16pattern\x06\x16queue".
BINDING_PREFIX = "_kombu.binding."

PREFIX = "queueworker:"

#: Hash of the messages workers hold (worker/fetch.py): delivery tag -> "{hostname}\n{list it came from}",
#: written in the same Redis operation that pops the message (and records it in `unacked`).
HELD_HASH = f"{PREFIX}held"
#: A worker's lease: key f"{ALIVE_PREFIX}{hostname}" with a TTL of HEARTBEAT_TTL, refreshed while it lives;
#: when it has expired, what the worker held goes back to its queue.
ALIVE_PREFIX = f"{PREFIX}alive:"


def alive_key(hostname: str) -> str:
    return f"{ALIVE_PREFIX}{hostname}"


#: Hash per queue: field = worker hostname, value = JSON heartbeat
#: {"hostname", "pid", "busy", "total", "processed", "ts"}; entries older than HEARTBEAT_TTL are dead.
#: The whole hash expires HEARTBEAT_TTL after the last heartbeat of any worker.
HEARTBEAT_INTERVAL = 5.0
HEARTBEAT_TTL = 20.0


def heartbeat_key(queue: str) -> str:
    return f"{PREFIX}heartbeats:{queue}"


#: Counter per queue: tasks finished (succeeded, failed or rejected) by workers, added at each heartbeat.
def completed_key(queue: str) -> str:
    return f"{PREFIX}completed:{queue}"


#: Counter per task id: how many times its message came back (kombu's `redelivered` flag) and was
#: delivered again; past QUEUEWORKER_MAX_REDELIVERIES the worker rejects it. Expires on its own.
def redeliveries_key(task_id: str) -> str:
    return f"{PREFIX}redeliveries:{task_id}"


#: Hash: queue name -> JSON {"targetWaitSeconds": float, "queueworker": "namespace/name"},
#: written by whoever reconciles QueueWorkers (operator, local mode) and exported as metrics.
TARGETS_HASH = f"{PREFIX}targets"

#: Beat entries the platform owns are named f"{BEAT_ENTRY_PREFIX}{namespace}/{queueworker}/{schedule}".
BEAT_ENTRY_PREFIX = "qw/"


def queue_lists(queue: str) -> list[str]:
    """Every Redis list that holds messages of `queue`: the base list, then the priority lists."""
    return [queue, *(f"{queue}{PRIORITY_SEP}{step}" for step in PRIORITY_STEPS)]
