-- claim_slot.lua: claim scheduled slots for the current leader.
--
-- KEYS[1]  the lease key (value: its holder)
-- KEYS[2]  the fencing token key
-- KEYS[3]  the hash entry -> latest claimed slot (Unix milliseconds)
-- ARGV[1]  the token the claimer got with the lease
-- ARGV[2]  the claimer
-- ARGV[3..] pairs: an entry's name, a slot in Unix milliseconds
-- Returns  an array with 1 for each pair claimed, 0 for a pair whose
--          entry's latest claim is not earlier; an empty array when the
--          claimer no longer holds the lease or its token is stale
--
-- Atomic: the leadership check, the comparisons and the HSETs, so a leader
-- that lost its lease while paused claims nothing once another took over,
-- and no slot is claimed twice (claims only move forward).

if redis.call('GET', KEYS[1]) ~= ARGV[2] then return {} end
if tonumber(redis.call('GET', KEYS[2]) or '0') ~= tonumber(ARGV[1]) then return {} end
local out = {}
for i = 3, #ARGV, 2 do
  local last = tonumber(redis.call('HGET', KEYS[3], ARGV[i]) or '-1')
  if last < tonumber(ARGV[i + 1]) then
    redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
