-- claim_slot.lua: claim an entry's scheduled slot for the current leader.
--
-- KEYS[1]  the lease key (value: its holder)
-- KEYS[2]  the fencing token key
-- KEYS[3]  the hash entry -> latest claimed slot (Unix milliseconds)
-- ARGV[1]  the token the claimer got with the lease
-- ARGV[2]  the claimer
-- ARGV[3]  the entry's name
-- ARGV[4]  the slot, in Unix milliseconds
-- Returns  1 when claimed; 0 when the claimer no longer holds the lease,
--          its token is stale, or the entry's latest claim is not earlier
--
-- Atomic: the leadership check, the comparison and the HSET, so a leader
-- that lost its lease while paused claims nothing once another took over,
-- and no slot is claimed twice (claims only move forward).

if redis.call('GET', KEYS[1]) ~= ARGV[2] then return 0 end
if tonumber(redis.call('GET', KEYS[2]) or '0') ~= tonumber(ARGV[1]) then return 0 end
local last = tonumber(redis.call('HGET', KEYS[3], ARGV[3]) or '-1')
if last >= tonumber(ARGV[4]) then return 0 end
redis.call('HSET', KEYS[3], ARGV[3], ARGV[4])
return 1
