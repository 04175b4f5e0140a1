-- Record an opt-out unless the number already has one in this scope: the first keeps its time.
-- KEYS[1] records (hash: number -> opt-out JSON)  KEYS[2] index (sorted set, score 0, by number)
-- ARGV[1] number  ARGV[2] opt-out JSON
-- returns 1 when recorded, 0 when the number had opted out already
local added = redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], 0, ARGV[1])
return added
