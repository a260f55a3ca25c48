-- inbox_restore.lua: return a consumer inbox's messages to their list.
--
-- KEYS[1]  the inbox registry hash (inbox key -> "<refresh time>|<source list>")
-- KEYS[2]  the inbox list
-- KEYS[3]  the list its messages came from
-- ARGV[1]  the registration value read before, or "" to unregister
--          unconditionally
-- Returns  how many messages it moved
--
-- Atomic: moving every message back to the front of KEYS[3] (oldest
-- frontmost) and removing the inbox's registration if it is unchanged, so a
-- consumer that refreshed its registration meanwhile keeps it.

local n = 0
while redis.call('LMOVE', KEYS[2], KEYS[3], 'LEFT', 'RIGHT') do
  n = n + 1
end
if ARGV[1] == '' or redis.call('HGET', KEYS[1], KEYS[2]) == ARGV[1] then
  redis.call('HDEL', KEYS[1], KEYS[2])
end
return n
