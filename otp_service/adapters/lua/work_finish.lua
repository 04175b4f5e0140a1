-- A worker is done with a leased job: forget it ('done'), or keep it for another attempt at
-- a later time ('retry'). If the job was written again while leased (a newer fallback reason,
-- say), the newer job is queued at once instead, whatever the worker decided.
-- KEYS[1..3] outbox work, leases, jobs
-- ARGV[1] member  ARGV[2] the job JSON as leased  ARGV[3] 'done' | 'retry'
-- ARGV[4] now_ms  ARGV[5] retry only: the job JSON for the next attempt  ARGV[6] retry only: when, ms
-- returns 1
local member, now = ARGV[1], tonumber(ARGV[4])
redis.call('ZREM', KEYS[2], member)
local current = redis.call('HGET', KEYS[3], member)
if current and current ~= ARGV[2] then
  redis.call('ZADD', KEYS[1], now, member)
elseif current and ARGV[3] == 'retry' then
  redis.call('HSET', KEYS[3], member, ARGV[5])
  redis.call('ZADD', KEYS[1], tonumber(ARGV[6]), member)
elseif current then
  redis.call('HDEL', KEYS[3], member)
end
return 1
