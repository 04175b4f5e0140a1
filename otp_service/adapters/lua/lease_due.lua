-- Take up to ARGV[3] members of a schedule that are due, leasing each for ARGV[2] ms: its
-- score moves to now + lease, so no other worker takes it meanwhile, and a worker that
-- dies with it leaves it to be taken again when the lease runs out.
-- KEYS[1] sorted set (score: when due, ms)
-- ARGV[1] now_ms  ARGV[2] lease ms  ARGV[3] most members to take
-- returns the members taken
local now = tonumber(ARGV[1])
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), member)
end
return due
