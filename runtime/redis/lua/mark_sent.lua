-- mark_sent.lua: record that scheduled slots were published.
--
-- KEYS[1]  the hash entry -> latest sent slot (Unix milliseconds)
-- ARGV     pairs: an entry's name, a slot in Unix milliseconds
-- Returns  how many marks moved
--
-- Atomic: each comparison and its HSET, so a mark only moves forward even
-- when a deposed leader reports an older slot after its successor a newer.

local n = 0
for i = 1, #ARGV, 2 do
  local last = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '-1')
  if last < tonumber(ARGV[i + 1]) then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
    n = n + 1
  end
end
return n
