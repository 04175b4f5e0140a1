-- Take a tenant's jobs that are due, leased to the caller: each moves from `work` to
-- `leases` (scored by when the lease ends), so no other worker takes it meanwhile; jobs
-- whose lease ran out (their worker died or stalled) go back to `work` first and are taken
-- again here.
-- KEYS[1..3] outbox work, leases, jobs
-- ARGV[1] now_ms  ARGV[2] lease ms  ARGV[3] most jobs to take
-- returns {next due ms after this (-1: nothing left), member, job JSON, member, job JSON, ...}
local now, lease = tonumber(ARGV[1]), tonumber(ARGV[2])
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)) do
  redis.call('ZREM', KEYS[2], member)
  redis.call('ZADD', KEYS[1], now, member)
end
local taken = {-1}
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0,
    tonumber(ARGV[3]))) do
  redis.call('ZREM', KEYS[1], member)
  local job = redis.call('HGET', KEYS[3], member)
  if job then
    redis.call('ZADD', KEYS[2], now + lease, member)
    table.insert(taken, member)
    table.insert(taken, job)
  end
end
taken[1] = next_due(KEYS[1], KEYS[2])
return taken
