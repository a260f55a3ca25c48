-- move_due.lua: move deferred messages that are due to their lists.
--
-- KEYS[1]  the delayed sorted set; members "<len>:<list><envelope>" where
--          <len> is the byte length of the list key, scored by due time
-- ARGV[1]  now (unix time): members scored at most ARGV[1] are due
-- ARGV[2]  how many to move at most
-- Returns  {taken, next}: how many due members it took (malformed members
--          are dropped), and the score of the earliest member left (false
--          when none is), so the caller can sleep until it is due
--
-- Atomic: the ZREM of each due member and its LPUSH to its list, so a
-- deferred message is moved once, by one consumer, and never lost.

local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, m in ipairs(due) do
  redis.call('ZREM', KEYS[1], m)
  local colon = string.find(m, ':', 1, true)
  local n = colon and tonumber(string.sub(m, 1, colon - 1))
  if n then
    redis.call('LPUSH', string.sub(m, colon + 1, colon + n), string.sub(m, colon + n + 1))
  end
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #first == 0 then
  return {#due, false}
end
return {#due, first[2]}
