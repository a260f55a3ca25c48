-- fetch.lua: pop a batch of messages and record them as unacked.
--
-- KEYS[1]    kombu's unacked hash (tag -> [envelope, exchange, routing_key])
-- KEYS[2]    kombu's unacked_index sorted set (tag scored by delivery time)
-- KEYS[3..]  the lists to pop from, in priority order
-- ARGV[1]    how many messages to pop at most
-- ARGV[2]    the score (unix time) of this delivery in unacked_index
-- ARGV[3]    a nonce: tags of messages without a usable delivery tag are
--            ARGV[3] .. '.' .. n
-- ARGV[4..]  the queue name of each list KEYS[3..] (the unacked entry's
--            routing key)
-- The ZADD always names the keeper member first (score +inf, 110 bytes, see
-- indexKeeper in names.go): a member longer than zset-max-listpack-value
-- makes Redis create, or convert, unacked_index as a skiplist and keep it
-- one, since the set never empties. As a listpack (under 128 short tags)
-- every ZADD and ZREM scans and moves the whole set: ~4 µs of Redis time
-- per delivery at a prefetch of 32 (measured), against ~1 µs as a skiplist.
-- Readers by score (kombu's restore_visible, taskgen's restore: 0 to now
-- minus the visibility timeout) never see +inf.
-- Returns    a flat array: list index (1 = KEYS[3]), tag, envelope, ...
--            ({} when every list was empty)
--
-- Atomic: the RPOP of each message and its ZADD unacked_index / HSET unacked,
-- so a message is always either in a list or in the unacked bookkeeping
-- (which the visibility-timeout restore reads), never lost in between. A tag
-- already in the unacked hash (a duplicated message) is replaced by a fresh
-- one, so settling one copy never drops the other's entry.

local hkey, zkey = KEYS[1], KEYS[2]
local n = tonumber(ARGV[1])
local score, nonce = ARGV[2], ARGV[3]
local idx, envs = {}, {}
-- Pop in chunks whose reply stays under about 512 KiB. Redis joins a
-- command's reply to a script into one string that grows by only 1 MiB at a
-- time past 1 MiB, so one RPOP of many large messages costs time quadratic
-- in their total size (32 envelopes of 1.4 MB: ~7 ms of Redis CPU per
-- message). The first chunk is one message; each further chunk is as many as
-- fit in the budget at the size of the largest seen so far.
local budget, largest = 524288, 0
for i = 3, #KEYS do
  while n > 0 do
    local k = 1
    if largest > 0 then k = math.min(n, math.max(1, math.floor(budget / largest))) end
    local items = redis.call('RPOP', KEYS[i], k)
    if not items then break end
    for _, env in ipairs(items) do
      idx[#idx + 1], envs[#envs + 1] = i - 2, env
      if #env > largest then largest = #env end
    end
    n = n - #items
    if #items < k then break end
  end
end
if #envs == 0 then return {} end
local tags, qs, seq = {}, {}, 0
for k, env in ipairs(envs) do
  local tag
  -- Fast path: kombu's and taskgen's formatting (a plain find, no parse).
  -- Both write delivery_tag last, so its last 128 bytes are searched first
  -- (a search of the whole envelope stops at each of its ~100 quotes).
  local _, f = string.find(env, '"delivery_tag": "', -128, true)
  if not f then _, f = string.find(env, '"delivery_tag": "', 1, true) end
  if f then
    local e = string.find(env, '"', f + 1, true)
    if e then tag = string.sub(env, f + 1, e - 1) end
  end
  if not tag then
    local ok, t = pcall(cjson.decode, env)
    if ok and type(t) == 'table' and type(t['properties']) == 'table' then
      local dt = t['properties']['delivery_tag']
      if type(dt) == 'string' then tag = dt end
    end
  end
  if tag == '' or (tag and string.find(tag, '\\', 1, true)) then tag = nil end
  tags[k] = tag or false
end
-- A tag already in use (a duplicated message) gets a fresh one, so that
-- settling one copy never drops the other's entry.
local lookup, pos = {}, {}
for k, tag in ipairs(tags) do
  if tag then lookup[#lookup + 1] = tag; pos[#lookup] = k end
end
if #lookup > 0 then
  local cur = redis.call('HMGET', hkey, unpack(lookup))
  local seen = {}
  for j, v in ipairs(lookup) do
    if cur[j] or seen[v] then tags[pos[j]] = false end
    seen[v] = true
  end
end
local zargs, hargs, out = {'+inf', 'taskgen: keeps this sorted set a skiplist (a member longer than zset-max-listpack-value); never a delivery tag'}, {}, {}
for k, env in ipairs(envs) do
  local tag = tags[k]
  if not tag then
    seq = seq + 1
    tag = nonce .. '.' .. seq
  end
  local i = idx[k]
  local q = qs[i]
  if not q then
    q = cjson.encode(ARGV[3 + i])
    qs[i] = q
  end
  local entry
  if string.byte(env, 1) == 123 and string.byte(env, -1) == 125 then
    entry = '[' .. env .. ', "", ' .. q .. ']'
  else
    -- Not a JSON object: keep the entry valid JSON for every reader.
    entry = '[' .. cjson.encode(env) .. ', "", ' .. q .. ']'
  end
  zargs[#zargs + 1] = score
  zargs[#zargs + 1] = tag
  hargs[#hargs + 1] = tag
  hargs[#hargs + 1] = entry
  out[#out + 1] = i
  out[#out + 1] = tag
  out[#out + 1] = env
end
redis.call('ZADD', zkey, unpack(zargs))
redis.call('HSET', hkey, unpack(hargs))
return out
