-- store.lua: store a task's result document and publish it.
--
-- KEYS[1]  the result key (celery-task-meta-<task id>, also its channel)
-- ARGV[1]  the result document (JSON or msgpack)
-- ARGV[2]  expiry in seconds; 0 for none
-- Returns  1 when it wrote, 0 when the stored document is already a
--          SUCCESS (kept, as Celery 5 keeps it)
--
-- Atomic: the check of the current document, the SET (EX) and the PUBLISH,
-- so a task run twice (a lost worker, a network partition) never overwrites
-- its successful result and waiters see every write that is kept.

local cur = redis.call('GET', KEYS[1])
if cur then
  local ok, t = pcall(cjson.decode, cur)
  if not ok then ok, t = pcall(cmsgpack.unpack, cur) end
  if ok and type(t) == 'table' and t['status'] == 'SUCCESS' then return 0 end
end
local ttl = tonumber(ARGV[2])
if ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ttl)
else
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('PUBLISH', KEYS[1], ARGV[1])
return 1
