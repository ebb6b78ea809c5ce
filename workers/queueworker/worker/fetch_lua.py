"""The Redis scripts of the atomic fetch (worker/fetch.py). Each runs as one Redis operation.

Records they keep (keys.py): kombu's `unacked` hash (tag -> JSON [message, exchange, routing_key]) and
`unacked_index` zset (tag -> delivery time), exactly as stock kombu writes them, plus the holder record
`queueworker:held` (tag -> "{worker hostname}\\n{list the message came from}") and the worker's lease
`queueworker:alive:{hostname}` (a key with a TTL, refreshed while the worker lives).
"""

from __future__ import annotations

#: KEYS: unacked, unacked_index, held, alive key, then the lists in the order to try them.
#: ARGV: worker hostname, now (Unix seconds, the client's clock like kombu's), lease TTL in ms.
#: Pops the first message of the first non-empty list and, in the same operation, records it as unacked
#: and held by this worker. Returns nil when every list is empty, else {list, raw item, recorded (1/0)}:
#: an item that is not a kombu envelope (not JSON, no delivery tag) is returned unrecorded, for the
#: channel's malformed-message handling.
FETCH = """
redis.call('SET', KEYS[4], ARGV[2], 'PX', ARGV[3])
for i = 5, #KEYS do
  local item = redis.call('RPOP', KEYS[i])
  if item then
    local ok, msg = pcall(cjson.decode, item)
    if not ok or type(msg) ~= 'table' or type(msg['properties']) ~= 'table' then
      return {KEYS[i], item, 0}
    end
    local props = msg['properties']
    local tag = props['delivery_tag']
    if type(tag) ~= 'string' and type(tag) ~= 'number' then
      return {KEYS[i], item, 0}
    end
    local info = props['delivery_info']
    local ex, rk = '', ''
    if type(info) == 'table' then
      if type(info['exchange']) == 'string' then ex = info['exchange'] end
      if type(info['routing_key']) == 'string' then rk = info['routing_key'] end
    end
    redis.call('HSET', KEYS[1], tag, '[' .. item .. ',' .. cjson.encode(ex) .. ',' .. cjson.encode(rk) .. ']')
    redis.call('ZADD', KEYS[2], ARGV[2], tag)
    redis.call('HSET', KEYS[3], tag, ARGV[1] .. '\\n' .. KEYS[i])
    return {KEYS[i], item, 1}
  end
end
return nil
"""

#: KEYS: unacked, unacked_index, held. ARGV: tag, worker hostname.
#: Acknowledge a message this worker fetched, only if it still holds it (1). 0 = another worker holds it
#: now (it was recovered from this one and fetched again), 2 = nobody does (it was put back in its queue, or
#: fetched again by a worker without the library): either way its records are left alone.
ACK = """
local v = redis.call('HGET', KEYS[3], ARGV[1])
if v then
  if string.sub(v, 1, #ARGV[2] + 1) ~= ARGV[2] .. '\\n' then
    return 0
  end
  redis.call('HDEL', KEYS[3], ARGV[1])
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 1
end
return 2
"""

#: KEYS: unacked, unacked_index, held, the list to put the message back in.
#: ARGV: tag, worker hostname ('' = whoever holds it), the stored unacked value read before,
#:       the payload to push (marked redelivered), 1 = push at the far end (consumed last) else the head.
#: Put one held message back in its queue, exactly once: only while the record is unchanged since it was
#: read (and, with a hostname, still held by that worker). Returns 1 when it was put back, else 0.
RELEASE = """
local v = redis.call('HGET', KEYS[3], ARGV[1])
if ARGV[2] ~= '' and (not v or string.sub(v, 1, #ARGV[2] + 1) ~= ARGV[2] .. '\\n') then
  return 0
end
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[3] then
  return 0
end
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if ARGV[5] == '1' then
  redis.call('LPUSH', KEYS[4], ARGV[4])
else
  redis.call('RPUSH', KEYS[4], ARGV[4])
end
return 1
"""

#: KEYS: held. ARGV: worker hostname, prefix of the lease keys.
#: Take over every message held by a worker whose lease has expired (the holder record names this worker
#: from then on; the caller puts them back in their queues). Atomic, so when several workers recover at
#: once each message is taken over by exactly one. Returns the tags taken over.
CLAIM = """
local all = redis.call('HGETALL', KEYS[1])
local alive = {}
local out = {}
for i = 1, #all, 2 do
  local tag, v = all[i], all[i + 1]
  local nl = string.find(v, '\\n', 1, true)
  local w = v
  local rest = ''
  if nl then
    w = string.sub(v, 1, nl - 1)
    rest = string.sub(v, nl)
  end
  if w ~= ARGV[1] then
    local a = alive[w]
    if a == nil then
      a = redis.call('EXISTS', ARGV[2] .. w) == 1
      alive[w] = a
    end
    if not a then
      redis.call('HSET', KEYS[1], tag, ARGV[1] .. rest)
      table.insert(out, tag)
    end
  end
end
return out
"""
