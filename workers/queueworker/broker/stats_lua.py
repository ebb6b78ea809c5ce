"""The server-side scripts of queueworker.broker.stats.queue_stats (Lua, read-only: `no-writes`, Redis
>= 7 or Valkey).

Each returns one JSON string, so the client parses one reply per script instead of tens of thousands of
reply objects. They are written for 10,000 queues: per queue, as few `redis.call`s as the keys that
exist need, no JSON decoding of whole messages, numbers formatted once and reused.
"""

from __future__ import annotations

# A chunk of queues (ARGV[7], JSON list) -> a JSON array with one entry per queue, in order: 0 when the
# queue has nothing to report (no list, no live heartbeat, no counter), else
# [len(base), len(p3), len(p6), len(p9), "raw stamp of the oldest stamped tail" or "", live workers,
#  busy slots, total slots, completion counter (0 when absent or not a decimal integer)].
# ARGV: heartbeat key prefix, counter key prefix, the stamp header, now, heartbeat TTL, the three
# priority suffixes (JSON), the queues (JSON).
#
# Per queue: one EXISTS over its four lists and its heartbeat hash; HVALS and LLEN only while keys that
# EXISTS counted are unaccounted for; LINDEX -1 of non-empty lists, where the stamp is found with a
# plain string search for the header's key (no JSON decoding of the message, whose body can be large);
# counters from one MGET per chunk; numbers formatted once per distinct value.
QUEUES = r"""#!lua flags=no-writes
local hb_prefix, done_prefix = ARGV[1], ARGV[2]
-- the stamp header's key is searched as `name"` (a name's first letter is rare in a message, quotes are
-- not), then checked to follow a quote: the first `"name"` in the message, as before
local name_q = ARGV[3] .. '"'
local after = #name_q
local oldest_alive = tonumber(ARGV[4]) - tonumber(ARGV[5])
local sfx = cjson.decode(ARGV[6])
local s3, s6, s9 = sfx[1], sfx[2], sfx[3]
local queues = cjson.decode(ARGV[7])
local call, pcall_redis, find, match, byte = redis.call, redis.pcall, string.find, string.match, string.byte
local encode, decode, concat = cjson.encode, cjson.decode, table.concat
local n = #queues
if n == 0 then return '[]' end

local done_keys = {}
for i = 1, n do done_keys[i] = done_prefix .. queues[i] end
local done = call('MGET', unpack(done_keys))
done_keys = nil

-- numbers as JSON text, formatted once (cjson.encode: the same text and the same errors as before)
local text = {}
local function num(v)
  local s = text[v]
  if s == nil then
    s = encode(v)
    text[v] = s
  end
  return s
end

-- the stamp of the oldest message of a non-empty list: the number after the header's key
local function tail_stamp(key, stamp, oldest)
  local tail = call('LINDEX', key, '-1')  -- a string: no number formatting per call
  if not tail then return stamp, oldest end
  local at = find(tail, name_q, 2, true)
  while at and byte(tail, at - 1) ~= 34 do at = find(tail, name_q, at + 1, true) end
  if at then
    local raw = match(tail, '^%s*:%s*(%-?[%d%.eE%+%-]+)', at + after)
    local value = raw and tonumber(raw)
    if value and (oldest == nil or value < oldest) then return raw, value end
  end
  return stamp, oldest
end

local out = {}
for i = 1, n do
  local q = queues[i]
  local hb = hb_prefix .. q
  local l3, l6, l9 = q .. s3, q .. s6, q .. s9
  local left = call('EXISTS', q, l3, l6, l9, hb)
  local d = done[i]
  if d then d = match(d, '^0*(%d+)$') end  -- the counter as a JSON integer, or nil
  if left == 0 then
    if d then out[i] = '[0,0,0,0,"",0,0,0,' .. d .. ']' else out[i] = '0' end
  else
    local workers, busy, total = 0, 0, 0
    local beats = pcall_redis('HVALS', hb)
    if beats[1] then
      left = left - 1
      for b = 1, #beats do
        local ok, beat = pcall(decode, beats[b])
        if ok and type(beat) == 'table' then
          local ts = tonumber(beat.ts)
          if ts and ts >= oldest_alive then
            workers = workers + 1
            busy = busy + (tonumber(beat.busy) or 0)
            total = total + (tonumber(beat.total) or 0)
          end
        end
      end
    end
    local n0, n3, n6, n9 = 0, 0, 0, 0
    local stamp, oldest = '', nil
    if left > 0 then
      n0 = pcall_redis('LLEN', q)
      if type(n0) ~= 'number' then n0 = 0
      elseif n0 > 0 then
        left = left - 1
        stamp, oldest = tail_stamp(q, stamp, oldest)
      end
    end
    if left > 0 then
      n3 = pcall_redis('LLEN', l3)
      if type(n3) ~= 'number' then n3 = 0
      elseif n3 > 0 then
        left = left - 1
        stamp, oldest = tail_stamp(l3, stamp, oldest)
      end
    end
    if left > 0 then
      n6 = pcall_redis('LLEN', l6)
      if type(n6) ~= 'number' then n6 = 0
      elseif n6 > 0 then
        left = left - 1
        stamp, oldest = tail_stamp(l6, stamp, oldest)
      end
    end
    if left > 0 then
      n9 = pcall_redis('LLEN', l9)
      if type(n9) ~= 'number' then n9 = 0
      elseif n9 > 0 then
        stamp, oldest = tail_stamp(l9, stamp, oldest)
      end
    end
    if n0 + n3 + n6 + n9 > 0 or workers > 0 or d then
      out[i] = '[' .. (text[n0] or num(n0)) .. ',' .. (text[n3] or num(n3)) .. ',' .. (text[n6] or num(n6))
        .. ',' .. (text[n9] or num(n9)) .. ',"' .. stamp .. '",' .. (text[workers] or num(workers)) .. ','
        .. (text[busy] or num(busy)) .. ',' .. (text[total] or num(total)) .. ',' .. (d or '0') .. ']'
    else
      out[i] = '0'
    end
  end
end
return '[' .. concat(out, ',') .. ']'
"""

# [cursor, JSON list of queue names]: SCAN for kombu's binding sets from ARGV[1] (pattern ARGV[2], COUNT
# ARGV[3], at most ARGV[4] SCAN calls), leaving out the keys listed in ARGV[5]. A binding member is
# "routing_key SEP pattern SEP queue" (SEP = ARGV[6]); members with another shape or an empty queue are
# left out, and each queue is listed once per call. The members of the sets come from SUNION, a thousand
# sets at a time (one SMEMBERS per set only when a key of those is not a set).
DISCOVER = r"""#!lua flags=no-writes
local cursor, pattern, count, rounds = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local sep = ARGV[6]
local step = #sep
local find, sub = string.find, string.sub
local skip = {}
for _, key in ipairs(cjson.decode(ARGV[5])) do skip[key] = true end
local seen, names, n = {}, {}, 0
local function add(members)
  for _, m in ipairs(members) do
    local a = find(m, sep, 1, true)
    local b = a and find(m, sep, a + step, true)
    if b and b + step <= #m and not find(m, sep, b + step, true) then
      local q = sub(m, b + step)
      if not seen[q] then
        seen[q] = true
        n = n + 1
        names[n] = q
      end
    end
  end
end
repeat
  local reply = redis.call('SCAN', cursor, 'MATCH', pattern, 'COUNT', count)
  cursor = reply[1]
  local bindings, k = {}, 0
  for _, key in ipairs(reply[2]) do
    if not skip[key] then
      k = k + 1
      bindings[k] = key
    end
  end
  for first = 1, k, 1000 do  -- SUNION of at most 1000 keys (unpack's limit is a few thousand)
    local last = math.min(first + 999, k)
    local members = redis.pcall('SUNION', unpack(bindings, first, last))
    if members.err then  -- a key that is not a set: read the others one by one
      for j = first, last do
        local set = redis.pcall('SMEMBERS', bindings[j])
        if not set.err then add(set) end
      end
    else
      add(members)
    end
  end
  rounds = rounds - 1
until cursor == '0' or rounds <= 0
if n == 0 then return {cursor, '[]'} end
return {cursor, cjson.encode(names)}
"""

# The targets hash as flat JSON [field, value, ...]: one string to parse instead of one reply per item.
TARGETS = """#!lua flags=no-writes
local all = redis.call('HGETALL', KEYS[1])
if #all == 0 then return '[]' end
return cjson.encode(all)
"""

# {routing_key: count} over the `unacked` hash. The routing key is the last element of each entry's
# JSON [message, exchange, routing_key]: read backwards from the entry's end without decoding the message,
# falling back to a full decode (and the message's delivery_info) for anything unusual (escapes, null).
UNACKED = """#!lua flags=no-writes
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
