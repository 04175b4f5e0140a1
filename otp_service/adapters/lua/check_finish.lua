-- Second half of a check, after the caller compared the code off Redis.
-- approve: only a verification still pending becomes approved, so of many concurrent
-- right codes exactly one wins (the others see it ended).
-- reject: only the check that took the last attempt ends the verification as
-- max_attempts_reached (so a right code still being compared in that window is not refused).
-- KEYS[1] verification  KEYS[2] pending index of its phone number
-- ARGV[1] 'approve' | 'reject'  ARGV[2] now_ms  ARGV[3] how long an ended verification stays readable, ms
-- ARGV[4] the attempt number check_begin gave this check
-- returns {status after the change, check_attempts, max_check_attempts, 1 if this call ended it else 0};
-- {'missing'} when gone
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing'} end
local now, keep = tonumber(ARGV[2]), tonumber(ARGV[3])
local v = redis.call('HMGET', KEYS[1], 'status', 'check_attempts', 'max_check_attempts', 'id')
local status, attempts, max = v[1], tonumber(v[2]), tonumber(v[3])
local function finish(final)
  redis.call('HSET', KEYS[1], 'status', final, 'ended_at', now)
  redis.call('PEXPIREAT', KEYS[1], now + keep)
  if redis.call('GET', KEYS[2]) == v[4] then redis.call('DEL', KEYS[2]) end
  return {final, attempts, max, 1}
end
if status ~= 'pending' then return {status, attempts, max, 0} end
if ARGV[1] == 'approve' then return finish('approved') end
if tonumber(ARGV[4]) >= max then return finish('max_attempts_reached') end
return {status, attempts, max, 0}
