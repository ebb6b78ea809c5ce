"""The queue probe: what is waiting, what is running and who is serving, for any number of queues.

`probe(client, queues, discover)` reads, per queue, the depth of the base list and of the priority
lists, the publish stamp of each list's oldest message, the live heartbeats, the completion counter,
the operator's wait target, and the delivered-but-unacked messages, in a constant number of round
trips whatever the number of queues:

- without discovery, one pipeline: a server-side read-only script per chunk of queues (one EXISTS for
  the four lists and the heartbeat hash, then LLEN of the lists that exist, LINDEX -1 of the non-empty
  ones, HVALS of the heartbeat hash; one MGET for the chunk's counters), one script counting the
  `unacked` hash by routing key, and HGETALL of the targets hash;
- with discovery, before that: a server-side SCAN (never KEYS) for kombu's binding sets and their
  members, bounded per call, in one round trip with the targets for keyspaces up to about
  SCAN_COUNT * SCAN_ROUNDS keys and one more per such slice beyond.

The scripts return one JSON string each, so a probe of 10,000 queues costs the client one
`json.loads` per chunk instead of tens of thousands of reply objects. They only read, and say so
with the `no-writes` flag (which needs Redis >= 7 or Valkey): a full `noeviction` Redis still answers.

Redis errors (unreachable, auth, ...) are raised to the caller: the exporter reports the broker
down, the autoscaler holds replicas. Nothing here ever turns "could not read" into zero.
"""

from __future__ import annotations

import functools
import json
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis

from queueworker import keys

#: Queues per server-side script call: bounds how long one call holds the Redis event loop.
CHUNK = 1000
#: COUNT hint per SCAN call during discovery, and SCAN calls per server-side discovery call (so one
#: call visits about SCAN_COUNT * SCAN_ROUNDS keys, a few milliseconds of Redis time).
SCAN_COUNT = 5000
SCAN_ROUNDS = 10
#: Kombu's exchanges for Celery's own control, reply and event queues: not task queues.
INTERNAL_EXCHANGES = frozenset({"celery.pidbox", "reply.celery.pidbox", "celeryev"})

# A flat array with one row per queue that has anything to report (an index into the chunk, the length
# of each list, the raw publish stamp of the oldest stamped tail or "", live workers, busy slots, total
# slots, the completion counter as text); queues with nothing (no lists, no heartbeat, no counter) are
# left out. One EXISTS for the lists and the heartbeat hash, then HVALS and LLEN only for what exists:
# at 10,000 queues, calls and allocations are what a script like this spends its time on.
_QUEUES_SCRIPT = """#!lua flags=no-writes
local hb_prefix, done_prefix = ARGV[1], ARGV[2]
local needle = '"' .. ARGV[3] .. '"'
local oldest_alive = tonumber(ARGV[4]) - tonumber(ARGV[5])
local suffixes = cjson.decode(ARGV[6])
local nsuffix = #suffixes
local queues = cjson.decode(ARGV[7])
local call, pcall_redis, find, match = redis.call, redis.pcall, string.find, string.match
local done_keys = {}
for i, q in ipairs(queues) do done_keys[i] = done_prefix .. q end
local done = call('MGET', unpack(done_keys))
local out, k = {}, 0
local lists, counts = {}, {}
for i, q in ipairs(queues) do
  for s = 1, nsuffix do lists[s] = q .. suffixes[s] end
  local hb_key = hb_prefix .. q
  lists[nsuffix + 1] = hb_key
  local left = call('EXISTS', unpack(lists, 1, nsuffix + 1))
  local workers, busy, total = 0, 0, 0
  if left > 0 then
    local beats = pcall_redis('HVALS', hb_key)
    if type(beats) == 'table' and beats[1] then
      left = left - 1
      for _, raw in ipairs(beats) do
        local ok, hb = pcall(cjson.decode, raw)
        if ok and type(hb) == 'table' and tonumber(hb.ts) and tonumber(hb.ts) >= oldest_alive then
          workers = workers + 1
          busy = busy + (tonumber(hb.busy) or 0)
          total = total + (tonumber(hb.total) or 0)
        end
      end
    end
  end
  local depth, stamp, oldest = 0, '', nil
  for s = 1, nsuffix do
    local n = 0
    if left > 0 then
      n = pcall_redis('LLEN', lists[s])
      if type(n) ~= 'number' then n = 0 end
      if n > 0 then
        left = left - 1
        local tail = call('LINDEX', lists[s], -1)
        local at = tail and find(tail, needle, 1, true)
        if at then
          local raw = match(tail, '^%s*:%s*(%-?[%d%.eE%+%-]+)', at + #needle)
          local value = raw and tonumber(raw)
          if value and (oldest == nil or value < oldest) then stamp, oldest = raw, value end
        end
      end
    end
    counts[s] = n
    depth = depth + n
  end
  local d = done[i]
  if d and not match(d, '^%d+$') then d = false end
  if depth > 0 or workers > 0 or d then
    out[k + 1] = i
    for s = 1, nsuffix do out[k + 1 + s] = counts[s] end
    k = k + 1 + nsuffix
    out[k + 1], out[k + 2], out[k + 3], out[k + 4], out[k + 5] = stamp, workers, busy, total, d or '0'
    k = k + 5
  end
end
if k == 0 then return '[]' end
return cjson.encode(out)
"""


# [cursor, JSON list of binding members]: SCAN for kombu's binding sets from ARGV[1] (pattern ARGV[2],
# COUNT ARGV[3], at most ARGV[4] SCAN calls), leaving out the keys listed in ARGV[5].
_DISCOVER_SCRIPT = """#!lua flags=no-writes
local cursor, pattern, count, rounds = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local skip = {}
for _, key in ipairs(cjson.decode(ARGV[5])) do skip[key] = true end
local members, n = {}, 0
repeat
  local reply = redis.call('SCAN', cursor, 'MATCH', pattern, 'COUNT', count)
  cursor = reply[1]
  for _, key in ipairs(reply[2]) do
    if not skip[key] then
      local set = redis.pcall('SMEMBERS', key)
      if type(set) == 'table' and not set.err then
        for _, m in ipairs(set) do
          n = n + 1
          members[n] = m
        end
      end
    end
  end
  rounds = rounds - 1
until cursor == '0' or rounds <= 0
if n == 0 then return {cursor, '[]'} end
return {cursor, cjson.encode(members)}
"""

# The targets hash as flat JSON [field, value, ...]: one string to parse instead of one reply per item.
_TARGETS_SCRIPT = """#!lua flags=no-writes
local all = redis.call('HGETALL', KEYS[1])
if #all == 0 then return '[]' end
return cjson.encode(all)
"""

# {routing_key: count} over the `unacked` hash. The routing key is the last element of each entry's
# JSON [message, exchange, routing_key]: read backwards from the entry's end without decoding the message,
# falling back to a full decode (and the message's delivery_info) for anything unusual (escapes, null).
_UNACKED_SCRIPT = """#!lua flags=no-writes
local counts = {}
local entries = redis.pcall('HVALS', KEYS[1])
if type(entries) ~= 'table' or entries.err then return '{}' end
local byte, sub = string.byte, string.sub
for _, v in ipairs(entries) do
  local rk = nil
  local n = #v
  if byte(v, n) == 93 and byte(v, n - 1) == 34 then
    local s = n - 2
    local c = byte(v, s)
    while s > 1 and c ~= 34 and c ~= 92 do
      s = s - 1
      c = byte(v, s)
    end
    if c == 34 and s > 1 then
      local before = byte(v, s - 1)
      if before == 32 or before == 44 then rk = sub(v, s + 1, n - 2) end
    end
  end
  if rk == nil then
    local ok, entry = pcall(cjson.decode, v)
    if ok and type(entry) == 'table' then
      if type(entry[3]) == 'string' then
        rk = entry[3]
      elseif type(entry[1]) == 'table' and type(entry[1].properties) == 'table'
          and type(entry[1].properties.delivery_info) == 'table'
          and type(entry[1].properties.delivery_info.routing_key) == 'string' then
        rk = entry[1].properties.delivery_info.routing_key
      end
    end
  end
  if rk then counts[rk] = (counts[rk] or 0) + 1 end
end
if next(counts) == nil then return '{}' end
return cjson.encode(counts)
"""


@dataclass(slots=True)
class QueueStats:
    """One queue as the probe saw it. (Not frozen: building 10,000 frozen instances costs a scrape 10 ms.)"""

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


def _queue_from_binding(member: bytes | str) -> str | None:
    """A kombu binding member is "routing_key SEP pattern SEP queue"."""
    try:
        text = _text(member)
    except UnicodeDecodeError:
        return None
    parts = text.split(keys.PRIORITY_SEP)
    if len(parts) != 3 or not parts[-1] or "\ufffd" in parts[-1]:  # not a binding, or not UTF-8
        return None
    return parts[-1]


def _discover(client: redis.Redis) -> tuple[list[str], dict[str, float]]:
    """Queues bound on the broker (sorted) and the wait targets. The SCAN runs server-side, at most
    SCAN_ROUNDS calls of SCAN_COUNT per script call, so one call covers most keyspaces and none holds
    Redis for long; the targets come in the same round trip as the first call."""
    skip = json.dumps(sorted(f"{keys.BINDING_PREFIX}{name}" for name in INTERNAL_EXCHANGES))
    args = [f"{keys.BINDING_PREFIX}*", str(SCAN_COUNT), str(SCAN_ROUNDS), skip]
    pipe = client.pipeline(transaction=False)
    pipe.eval(_DISCOVER_SCRIPT, 0, "0", *args)
    pipe.eval(_TARGETS_SCRIPT, 1, keys.TARGETS_HASH)
    (cursor, members), raw_targets = pipe.execute()
    found: set[str] = set()
    while True:
        for member in json.loads(_text_lenient(members)):
            queue = _queue_from_binding(member)
            if queue is not None:
                found.add(queue)
        if _text(cursor) == "0":
            break
        cursor, members = client.eval(_DISCOVER_SCRIPT, 0, cursor, *args)
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
    """targetWaitSeconds of one targets-hash value (cached: the values rarely change between probes)."""
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


def probe(client: redis.Redis, queues: Iterable[str] = (), discover: bool = False,
          now: float | None = None) -> dict[str, QueueStats]:
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

    suffixes = [name[len("q"):] for name in keys.queue_lists("q")]
    head = [keys.heartbeat_key(""), keys.completed_key(""), keys.PUBLISHED_HEADER, repr(now),
            repr(keys.HEARTBEAT_TTL), json.dumps(suffixes)]
    pipe = client.pipeline(transaction=False)
    chunks = [names[i:i + CHUNK] for i in range(0, len(names), CHUNK)]
    for chunk in chunks:
        pipe.eval(_QUEUES_SCRIPT, 0, *head, json.dumps(chunk))
    pipe.eval(_UNACKED_SCRIPT, 1, keys.UNACKED_HASH)
    if targets is None:
        pipe.eval(_TARGETS_SCRIPT, 1, keys.TARGETS_HASH)
    replies = pipe.execute()

    found: dict[str, list[Any]] = {}
    width = 1 + len(suffixes) + 5
    for chunk, reply in zip(chunks, replies[:len(chunks)], strict=True):
        flat = json.loads(reply)
        for at in range(0, len(flat), width):
            found[chunk[flat[at] - 1]] = flat[at + 1:at + width]
    reserved_by_key: dict[str, int] = json.loads(_text_lenient(replies[len(chunks)]))
    if targets is None:
        targets = _parse_targets(replies[len(chunks) + 1])

    nlists = len(suffixes)
    zero = (0,) * nlists
    reserved_of, target_of = reserved_by_key.get, targets.get
    stats: dict[str, QueueStats] = {}
    for queue in names:
        row = found.get(queue)
        if row is None:  # nothing waits, no heartbeat, no counter
            stats[queue] = QueueStats(queue, 0, zero, reserved_of(queue, 0), 0.0, 0, 0, 0, 0,
                                      target_of(queue), False)
            continue
        depths = tuple(row[:nlists])
        stamp, workers, busy, total, done = row[nlists:]
        depth = sum(depths)
        oldest_wait: float | None = 0.0
        if depth:
            oldest_wait = max(now - float(stamp), 0.0) if stamp else None
        stats[queue] = QueueStats(queue, depth, depths, reserved_of(queue, 0), oldest_wait, workers, busy,
                                  total, int(done), target_of(queue), depth > 0 and workers == 0)
    return stats
