-- restore.lua: restore one unacked delivery whose visibility timeout expired.
--
-- KEYS[1]  kombu's unacked hash
-- KEYS[2]  kombu's unacked_index sorted set
-- KEYS[3]  the list to restore to (its queue's list, or the dead-letter list)
-- ARGV[1]  the delivery tag
-- ARGV[2]  the unacked entry as read before (compare-and-restore)
-- ARGV[3]  the value to RPUSH (the envelope marked redelivered)
-- Returns  1 when it restored, 0 when the entry was gone (its index entry is
--          then dropped) or changed meanwhile
--
-- Atomic: the compare of the entry with what was read, its removal from the
-- unacked bookkeeping and the push to the front of its list, so an entry
-- acknowledged or restored concurrently is never restored (again).

local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 0
end
if cur ~= ARGV[2] then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('RPUSH', KEYS[3], ARGV[3])
return 1
