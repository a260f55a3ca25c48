-- release_lease.lua: give up a lease if the caller holds it.
--
-- KEYS[1]  the lease key
-- ARGV[1]  the holder giving it up
-- Returns  1 when released, 0 when another holder has it (or none)
--
-- Atomic: the check and the DEL, so a scheduler never frees a lease that
-- has passed to another.

if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
