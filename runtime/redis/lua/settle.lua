-- settle.lua: settle one delivery (reject to dead letter, or requeue).
--
-- KEYS[1]  kombu's unacked hash
-- KEYS[2]  kombu's unacked_index sorted set
-- KEYS[3]  the list to push ARGV[2] to (dead-letter list or queue list)
-- ARGV[1]  the delivery tag
-- ARGV[2]  the value to push (dead-letter record or redelivered envelope)
-- ARGV[3]  "front": RPUSH (next to be consumed); anything else: LPUSH
-- Returns  1 when the delivery was still unacked and ARGV[2] was pushed, 0
--          when it was not (restored or settled by someone else meanwhile)
--
-- Atomic: removing the delivery from the unacked bookkeeping and pushing its
-- successor, so a message is never both restored and requeued (a duplicate)
-- nor dropped from both.

redis.call('ZREM', KEYS[2], ARGV[1])
if redis.call('HDEL', KEYS[1], ARGV[1]) == 1 then
  if ARGV[3] == 'front' then
    redis.call('RPUSH', KEYS[3], ARGV[2])
  else
    redis.call('LPUSH', KEYS[3], ARGV[2])
  end
  return 1
end
return 0
