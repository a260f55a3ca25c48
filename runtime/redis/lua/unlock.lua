-- unlock.lua: release a lock taken with SET NX, only by its holder.
--
-- KEYS[1]  the lock key (unacked_mutex, or a unique task's taskgen-unique-… key)
-- ARGV[1]  the holder's token (the lock's value: the task id for a unique task)
-- Returns  1 when it deleted the lock, 0 when another holder has it
--
-- Atomic: the compare of the token and the DEL, so a lock that expired and
-- was taken by someone else is never released by the former holder.

if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
