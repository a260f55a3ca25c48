-- lease.lua: take or renew a scheduler's lease (runtime/beat leadership).
--
-- KEYS[1]  the lease key: its value is the holder, its TTL the lease
-- KEYS[2]  the fencing token: incremented each time the lease changes hands
-- ARGV[1]  the holder asking
-- ARGV[2]  the lease time in milliseconds
-- Returns  {1, token} when ARGV[1] holds the lease now (taken or renewed),
--          {0, token} when another holder has it
--
-- Atomic: the check of the holder, the SET/PEXPIRE and the INCR, so two
-- schedulers never both take a free lease, and a token names one tenure.

local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, tonumber(redis.call('GET', KEYS[2]) or '0')}
end
if not cur then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return {1, redis.call('INCR', KEYS[2])}
end
return {0, tonumber(redis.call('GET', KEYS[2]) or '0')}
