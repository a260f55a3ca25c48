-- mark_sent.lua: record that an entry's slot was published.
--
-- KEYS[1]  the hash entry -> latest sent slot (Unix milliseconds)
-- ARGV[1]  the entry's name
-- ARGV[2]  the slot, in Unix milliseconds
-- Returns  1 when recorded, 0 when a later slot was recorded already
--
-- Atomic: the comparison and the HSET, so the mark only moves forward even
-- when a deposed leader reports an older slot after its successor a newer.

local last = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '-1')
if last >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
