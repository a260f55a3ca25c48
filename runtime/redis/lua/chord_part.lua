-- chord_part.lua: record one finished member of a chord's header and say
-- whether it was the last (Celery's on_chord_part_return, made atomic).
--
-- KEYS[1]  celery-taskset-meta-<group id>.j  sorted set of parts (Celery's)
-- KEYS[2]  celery-taskset-meta-<group id>.t  chord size adjustment (Celery's)
-- KEYS[3]  celery-taskset-meta-<group id>.s  chord size (Celery's)
-- KEYS[4]  celery-taskset-meta-<group id>.ids  task ids recorded by taskgen
-- ARGV[1]  the part: serialized [1, task id, state, result]
-- ARGV[2]  the member's group index (its score), "+inf" when unknown
-- ARGV[3]  expiry in seconds of the four keys; 0 for none
-- ARGV[4]  the member's task id
-- Returns  {1, parts...} (every part, by index) when this call completed
--          the chord; {0} otherwise
--
-- Atomic: the ZADD, the count and the size check, so exactly one of the
-- members finishing at once sees the chord complete. A task id recorded
-- before (a redelivered member, whose part may serialize differently) adds
-- no part, so the count stays that of distinct members; it still reports a
-- complete chord, so that a worker that died after recording the last part
-- and before sending the body leaves the redelivery to send it (the keys
-- are deleted once the body is sent: a later duplicate finds no size).
-- Python workers write only the first three keys, as Celery does, and
-- count the same set.

if redis.call('SADD', KEYS[4], ARGV[4]) == 1 then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
end
local n = redis.call('ZCOUNT', KEYS[1], '-inf', '+inf')
local diff = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
local size = redis.call('GET', KEYS[3])
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  for i = 1, 4 do redis.call('EXPIRE', KEYS[i], ttl) end
end
if not size then
  return {0}
end
if n ~= tonumber(size) + diff then
  return {0}
end
local parts = redis.call('ZRANGE', KEYS[1], 0, -1)
table.insert(parts, 1, 1)
return parts
