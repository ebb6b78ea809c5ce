"""Queue stats: what is waiting, what is running and who is serving, for any number of queues.

`queue_stats(client, queues, discover)` reads, per queue, the depth of the base list and of the priority
lists, the publish stamp of each list's oldest message, the live heartbeats, the completion counter,
the operator's wait target, and the delivered-but-unacked messages, in a constant number of round
trips whatever the number of queues:

- without discovery, one pipeline: a server-side read-only script per chunk of queues (one EXISTS for
  the four lists and the heartbeat hash, then HVALS and LLEN only while keys it counted are unread,
  LINDEX -1 of the non-empty lists with a string search for the stamp; one MGET for the chunk's
  counters), one script counting the `unacked` hash by routing key, and HGETALL of the targets hash;
- with discovery, before that: a server-side SCAN (never KEYS) for kombu's binding sets, whose members
  the script turns into queue names, bounded per call, in one round trip with the targets for
  keyspaces up to about SCAN_COUNT * SCAN_ROUNDS keys and one more per such slice beyond.

The scripts (queueworker.broker.stats_lua) return one JSON string each, so a read of 10,000 queues costs the
client one `json.loads` per chunk instead of tens of thousands of reply objects. They only read, and
say so with the `no-writes` flag (which needs Redis >= 7 or Valkey): a full `noeviction` Redis still
answers.

Redis errors (unreachable, auth, ...) are raised to the caller: the exporter reports the broker
down, the autoscaler holds replicas. Nothing here ever turns "could not read" into zero.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import redis

from queueworker.broker import keys
from queueworker.broker import stats_lua as lua

#: Queues per server-side script call: bounds how long one call holds the Redis event loop.
CHUNK = 1000
#: COUNT hint per SCAN call during discovery, and SCAN calls per server-side discovery call (so one
#: call visits about SCAN_COUNT * SCAN_ROUNDS keys, a few milliseconds of Redis time).
SCAN_COUNT = 5000
SCAN_ROUNDS = 10
#: Kombu's exchanges for Celery's own control, reply and event queues: not task queues.
INTERNAL_EXCHANGES = frozenset({"celery.pidbox", "reply.celery.pidbox", "celeryev"})
#: The priority lists' suffixes, in keys.queue_lists order (the queue script reads exactly three).
PRIORITY_SUFFIXES = tuple(name[len("q") :] for name in keys.queue_lists("q")[1:])
if len(PRIORITY_SUFFIXES) != 3:  # pragma: no cover - a change to keys.PRIORITY_STEPS needs the script changed
    raise ImportError("queueworker.broker.stats_lua.QUEUES reads a base list and three priority lists")


@dataclass(slots=True)
class QueueStats:
    """One queue as queue_stats read it. (Not frozen: 10,000 frozen instances cost a scrape 10 ms.)"""

    queue: str
    #: Messages waiting in all of the queue's lists.
    depth: int
    #: Messages waiting per list, in `keys.queue_lists(queue)` order: base list, then priorities 3, 6, 9.
    depths: tuple[int, ...]
    #: Delivered to a worker (prefetched or running) and not acked yet: `unacked` entries of this queue.
    reserved: int
    #: Seconds the oldest waiting message has waited: 0.0 when nothing waits, None when the oldest
    #: messages carry no publish stamp (published by an app that does not stamp).
    oldest_wait: float | None
    #: Workers with a live heartbeat (younger than keys.HEARTBEAT_TTL) for this queue.
    workers: int
    busy_slots: int
    total_slots: int
    #: Tasks finished on this queue, as counted by the workers' heartbeats (a counter).
    completed_total: int
    #: The wait target set by the QueueWorker that serves this queue, if any.
    target_wait: float | None
    #: Tasks are waiting and no live worker consumes the queue: they stay PENDING until one comes.
    orphaned: bool

    @property
    def priority_depth(self) -> int:
        """Messages waiting in the priority lists (everything but the base list)."""
        return self.depth - self.depths[0]

    @property
    def idle_slots(self) -> int:
        return max(self.total_slots - self.busy_slots, 0)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _discover(client: redis.Redis) -> tuple[list[str], dict[str, float]]:
    """Queues bound on the broker (sorted) and the wait targets. The SCAN runs server-side, at most
    SCAN_ROUNDS calls of SCAN_COUNT per script call, so one call covers most keyspaces and none holds
    Redis for long; the script splits kombu's binding members ("routing_key SEP pattern SEP queue") and
    returns each queue once; the targets come in the same round trip as the first call."""
    skip = json.dumps(sorted(f"{keys.BINDING_PREFIX}{name}" for name in INTERNAL_EXCHANGES))
    args = [f"{keys.BINDING_PREFIX}*", str(SCAN_COUNT), str(SCAN_ROUNDS), skip, keys.PRIORITY_SEP]
    pipe = client.pipeline(transaction=False)
    pipe.eval(lua.DISCOVER, 0, "0", *args)
    pipe.eval(lua.TARGETS, 1, keys.TARGETS_HASH)
    (cursor, names), raw_targets = pipe.execute()
    found: set[str] = set()
    while True:
        # a queue name that is not UTF-8 reads as U+FFFD here: not a queue this read can name
        found.update(name for name in json.loads(_text_lenient(names)) if "\ufffd" not in name)
        if _text(cursor) == "0":
            break
        cursor, names = client.eval(lua.DISCOVER, 0, cursor, *args)
    return sorted(found), _parse_targets(raw_targets)


def _text_lenient(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def discover_queues(client: redis.Redis) -> list[str]:
    """Task queues declared on this broker, from kombu's binding sets (found with SCAN, never KEYS).

    Celery's own control, reply and event exchanges (pidbox, celeryev) are left out.
    """
    return _discover(client)[0]


@functools.lru_cache(maxsize=65536)
def _target_seconds(value: bytes | str) -> float | None:
    """targetWaitSeconds of one targets-hash value (cached: the values rarely change between reads)."""
    try:
        target = float(json.loads(value)["targetWaitSeconds"])
    except (ValueError, TypeError, KeyError):
        return None
    return target if math.isfinite(target) and target >= 0 else None


def _parse_targets(raw: bytes | str) -> dict[str, float]:
    """{queue: targetWaitSeconds} from the targets script's flat JSON [field, value, ...]."""
    flat = json.loads(_text_lenient(raw))
    targets: dict[str, float] = {}
    for field, value in zip(flat[::2], flat[1::2], strict=True):
        target = _target_seconds(value)
        if target is not None:
            targets[field] = target
    return targets


def _ordered(queues: Iterable[str], more: Iterable[str]) -> list[str]:
    return list(dict.fromkeys([*queues, *more]))


def queue_stats(
    client: redis.Redis, queues: Iterable[str] = (), discover: bool = False, now: float | None = None
) -> dict[str, QueueStats]:
    """Stats of `queues` (plus, with `discover`, every queue bound on the broker and every queue with a
    wait target), keyed by queue name in that order. Raises redis.RedisError when Redis can't be read.

    `now` (Unix seconds, default the current time) is what waits and heartbeat ages are measured from.
    """
    names = list(dict.fromkeys(queues))
    targets: dict[str, float] | None = None
    if discover:
        discovered, targets = _discover(client)
        names = _ordered(names, [*discovered, *sorted(targets)])
    if now is None:
        now = time.time()

    head = [
        keys.heartbeat_key(""),
        keys.completed_key(""),
        keys.PUBLISHED_HEADER,
        repr(now),
        repr(keys.HEARTBEAT_TTL),
        json.dumps(PRIORITY_SUFFIXES),
    ]
    pipe = client.pipeline(transaction=False)
    chunks = [names[i : i + CHUNK] for i in range(0, len(names), CHUNK)]
    for chunk in chunks:
        pipe.eval(lua.QUEUES, 0, *head, json.dumps(chunk))
    pipe.eval(lua.UNACKED, 1, keys.UNACKED_HASH)
    if targets is None:
        pipe.eval(lua.TARGETS, 1, keys.TARGETS_HASH)
    replies = pipe.execute()
    reserved: dict[str, int] = json.loads(_text_lenient(replies[len(chunks)]))
    if targets is None:
        targets = _parse_targets(replies[len(chunks) + 1])

    with _collector_paused():
        stats = _stats(chunks, replies, now)
    for queue, count in reserved.items():
        if (found := stats.get(queue)) is not None:
            found.reserved = count
    for queue, target in targets.items():
        if (found := stats.get(queue)) is not None:
            found.target_wait = target
    return stats


def _stats(chunks: list[list[str]], replies: list[Any], now: float) -> dict[str, QueueStats]:
    """QueueStats from the queue script's replies (reserved 0 and no target: the caller sets those).

    Each reply has one entry per queue of its chunk, in order: 0 for a queue with nothing to report,
    else [len(base), len(p3), len(p6), len(p9), raw stamp or "", workers, busy, total, counter]."""
    new, zero = QueueStats, (0, 0, 0, 0)
    stats: dict[str, QueueStats] = {}
    for chunk, reply in zip(chunks, replies, strict=False):
        for queue, row in zip(chunk, json.loads(reply), strict=True):
            if not row:
                stats[queue] = new(queue, 0, zero, 0, 0.0, 0, 0, 0, 0, None, False)
                continue
            d0, d3, d6, d9, stamp, workers, busy, total, done = row
            depth = d0 + d3 + d6 + d9
            if depth:
                # None: the oldest messages are unstamped; 0 when a publisher's clock runs ahead of ours
                oldest_wait = max(now - float(stamp), 0.0) if stamp else None
                stats[queue] = new(
                    queue,
                    depth,
                    (d0, d3, d6, d9),
                    0,
                    oldest_wait,
                    workers,
                    busy,
                    total,
                    done,
                    None,
                    not workers,
                )
            else:
                stats[queue] = new(queue, 0, zero, 0, 0.0, workers, busy, total, done, None, False)
    return stats


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while the results are built: 10,000 QueueStats that all
    survive would otherwise set off collections of the whole heap (a third of a read's client time),
    and they hold no cycles. Left as it was found (a caller that turned it off keeps it off)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
