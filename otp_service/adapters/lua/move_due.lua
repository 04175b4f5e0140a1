-- Move silence timers that are due onto the fallback stream, in one step, so a timer is
-- neither lost nor queued twice when several workers poll at once.
-- KEYS[1] sorted set of timers (score: due time, ms)  KEYS[2] the fallback stream
-- ARGV[1] now_ms  ARGV[2] most timers to move
-- returns how many were moved
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, job in ipairs(due) do
  redis.call('ZREM', KEYS[1], job)
  redis.call('XADD', KEYS[2], '*', 'job', job)
end
return #due
