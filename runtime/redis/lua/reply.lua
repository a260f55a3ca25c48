-- reply.lua: deliver a remote-control reply through a direct exchange.
--
-- KEYS[1]  the exchange's binding set _kombu.binding.<exchange>, members
--          "<routing key><sep><pattern><sep><queue>"
-- ARGV[1]  the global key prefix (prepended to each queue name)
-- ARGV[2]  the reply's routing key
-- ARGV[3]  the envelope to LPUSH
-- ARGV[4]  kombu's separator sep ("\x06\x16")
-- ARGV[5]  the lists' expiry in milliseconds (PEXPIRE after each push)
-- Returns  the number of lists pushed to (0: no client bound, the reply is
--          dropped as kombu drops it)
--
-- Atomic: resolving the bindings and pushing to every bound queue, so a
-- client binding or unbinding meanwhile gets the reply once or not at all.

local sep, rk = ARGV[4], ARGV[2]
local done, n = {}, 0
for _, m in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local i = string.find(m, sep, 1, true)
  if i and string.sub(m, 1, i - 1) == rk then
    local rest = string.sub(m, i + #sep)
    local j = string.find(rest, sep, 1, true)
    if j then
      local q = string.sub(rest, j + #sep)
      if q ~= '' and not done[q] then
        done[q] = true
        local key = ARGV[1] .. q
        redis.call('LPUSH', key, ARGV[3])
        redis.call('PEXPIRE', key, ARGV[5])
        n = n + 1
      end
    end
  end
end
return n
