-- Lift a number's opt-out in this scope.
-- KEYS[1] records  KEYS[2] index  ARGV[1] number
-- returns 1 when one was lifted, 0 when the number had not opted out
local removed = redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return removed
