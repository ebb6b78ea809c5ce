"""The queue probe: what is waiting, what is running and who is serving, for any number of queues.

`probe(client, queues, discover)` reads, per queue, the depth of the base list and of the priority
lists, the publish stamp of each list's oldest message, the live heartbeats, the completion counter,
the operator's wait target, and the delivered-but-unacked messages, in a constant number of round
trips whatever the number of queues:

- without discovery, one pipeline: a server-side read-only script per chunk of queues (LLEN of the
  four lists, LINDEX -1 of the non-empty ones, HVALS of the heartbeat hash, GET of the counter), one
  script counting the `unacked` hash by routing key, and HGETALL of the targets hash;
- with discovery, before that: SCAN (never KEYS) for kombu's binding sets, then one pipeline of their
  SMEMBERS. The SCAN calls grow with the size of the keyspace, not with the number of queues probed.

The scripts return one JSON string each, so a probe of 10,000 queues costs the client one
`json.loads` per chunk instead of tens of thousands of reply objects. They only read, and say so
with the `no-writes` flag (which needs Redis >= 7 or Valkey): a full `noeviction` Redis still answers.

Redis errors (unreachable, auth, ...) are raised to the caller: the exporter reports the broker
down, the autoscaler holds replicas. Nothing here ever turns "could not read" into zero.
"""

from __future__ import annotations

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
#: COUNT hint per SCAN call during discovery.
SCAN_COUNT = 5000
#: Kombu's exchanges for Celery's own control, reply and event queues: not task queues.
INTERNAL_EXCHANGES = frozenset({"celery.pidbox", "reply.celery.pidbox", "celeryev"})

# Per queue: the length of each list, the raw publish stamp of the oldest stamped tail ("" when
# nothing waits or no tail is stamped), live workers, busy slots, total slots, completion counter (text).
# One EXISTS for the four lists; LLEN only until every existing list has been read.
_QUEUES_SCRIPT = """#!lua flags=no-writes
local hb_prefix, done_prefix = ARGV[1], ARGV[2]
local needle = '"' .. ARGV[3] .. '"'
local oldest_alive = tonumber(ARGV[4]) - tonumber(ARGV[5])
local suffixes = cjson.decode(ARGV[6])
local nsuffix = #suffixes
local queues = cjson.decode(ARGV[7])
local done_keys = {}
for i, q in ipairs(queues) do done_keys[i] = done_prefix .. q end
local done = redis.call('MGET', unpack(done_keys))
local out = {}
for i, q in ipairs(queues) do
  local row = {}
  local lists = {}
  for s = 1, nsuffix do lists[s] = q .. suffixes[s] end
  local left = redis.call('EXISTS', unpack(lists))
  local stamp, oldest = '', nil
  for s = 1, nsuffix do
    local n = 0
    if left > 0 then
      n = redis.pcall('LLEN', lists[s])
      if type(n) ~= 'number' then n = 0 end
      if n > 0 then left = left - 1 end
    end
    if n > 0 then
      local tail = redis.call('LINDEX', lists[s], -1)
      local at = tail and string.find(tail, needle, 1, true)
      if at then
        local raw = string.match(tail, '^%s*:%s*(%-?[%d%.eE%+%-]+)', at + #needle)
        local value = raw and tonumber(raw)
        if value and (oldest == nil or value < oldest) then stamp, oldest = raw, value end
      end
    end
    row[s] = n
  end
  local workers, busy, total = 0, 0, 0
  local beats = redis.pcall('HVALS', hb_prefix .. q)
  if type(beats) == 'table' and not beats.err then
    for _, raw in ipairs(beats) do
      local ok, hb = pcall(cjson.decode, raw)
      if ok and type(hb) == 'table' and tonumber(hb.ts) and tonumber(hb.ts) >= oldest_alive then
        workers = workers + 1
        busy = busy + (tonumber(hb.busy) or 0)
        total = total + (tonumber(hb.total) or 0)
      end
    end
  end
  local d = done[i]
  if type(d) ~= 'string' or not string.match(d, '^%d+$') then d = '0' end
  row[nsuffix + 1] = stamp
  row[nsuffix + 2] = workers
  row[nsuffix + 3] = busy
  row[nsuffix + 4] = total
  row[nsuffix + 5] = d
  out[#out + 1] = row
end
return cjson.encode(out)
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
    return parts[-1] if len(parts) == 3 and parts[-1] else None


def _binding_keys(client: redis.Redis) -> list[str]:
    found: list[str] = []
    for raw_key in client.scan_iter(match=f"{keys.BINDING_PREFIX}*", count=SCAN_COUNT):
        key = _text(raw_key)
        if key[len(keys.BINDING_PREFIX):] not in INTERNAL_EXCHANGES:
            found.append(key)
    return found


def _discover(client: redis.Redis) -> tuple[list[str], dict[str, float]]:
    """Queues bound on the broker (sorted) and the wait targets, in one round trip after the SCAN."""
    binding_keys = _binding_keys(client)
    pipe = client.pipeline(transaction=False)
    for key in binding_keys:
        pipe.smembers(key)
    pipe.hgetall(keys.TARGETS_HASH)
    *bindings, raw_targets = pipe.execute()
    found: set[str] = set()
    for members in bindings:
        for member in members:
            queue = _queue_from_binding(member)
            if queue is not None:
                found.add(queue)
    return sorted(found), _parse_targets(raw_targets)


def discover_queues(client: redis.Redis) -> list[str]:
    """Task queues declared on this broker, from kombu's binding sets (found with SCAN, never KEYS).

    Celery's own control, reply and event exchanges (pidbox, celeryev) are left out.
    """
    return _discover(client)[0]


def _parse_targets(raw: dict[Any, Any]) -> dict[str, float]:
    targets: dict[str, float] = {}
    for field, value in raw.items():
        try:
            target = float(json.loads(value)["targetWaitSeconds"])
        except (ValueError, TypeError, KeyError):
            continue
        if math.isfinite(target) and target >= 0:
            targets[_text(field)] = target
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
        pipe.hgetall(keys.TARGETS_HASH)
    replies = pipe.execute()

    rows: list[list[Any]] = []
    for reply in replies[:len(chunks)]:
        rows.extend(json.loads(reply))
    reserved_by_key: dict[str, int] = json.loads(replies[len(chunks)])
    if targets is None:
        targets = _parse_targets(replies[len(chunks) + 1])

    nlists = len(suffixes)
    stats: dict[str, QueueStats] = {}
    for queue, row in zip(names, rows, strict=True):
        depths = tuple(row[:nlists])
        stamp, workers, busy, total, done = row[nlists:]
        depth = sum(depths)
        oldest_wait: float | None = 0.0
        if depth:
            oldest_wait = max(now - float(stamp), 0.0) if stamp else None
        stats[queue] = QueueStats(
            queue=queue, depth=depth, depths=depths, reserved=reserved_by_key.get(queue, 0),
            oldest_wait=oldest_wait, workers=workers, busy_slots=busy, total_slots=total,
            completed_total=int(done), target_wait=targets.get(queue), orphaned=depth > 0 and workers == 0,
        )
    return stats
