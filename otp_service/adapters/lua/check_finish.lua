-- Second half of a check, after the caller compared the code off Redis.
-- approve: only a verification still pending becomes approved, so of many concurrent
-- right codes exactly one wins (the others see it ended).
-- reject: only the check that took the last attempt ends the verification as
-- max_attempts_reached (so a right code still being compared in that window is not refused).
-- The check that ends it queues the matching event.
-- KEYS[1] verification  KEYS[2..5] tenant record, outbox work, leases, jobs
-- KEYS[6] pending index of its phone number
-- ARGV[1] 'approve' | 'reject'  ARGV[2] now_ms  ARGV[3] how long an ended verification stays readable, ms
-- ARGV[4] the attempt number check_begin gave this check  ARGV[5] event id
-- returns {hint, status after the change, check_attempts, max_check_attempts, 1 if this call ended it else 0};
-- {hint, 'missing'} when gone
if redis.call('EXISTS', KEYS[1]) == 0 then return {HINT, 'missing'} end
local now, keep = tonumber(ARGV[2]), tonumber(ARGV[3])
local v = redis.call('HMGET', KEYS[1], 'status', 'check_attempts', 'max_check_attempts')
local status, attempts, max = v[1], tonumber(v[2]), tonumber(v[3])
local function ended(final)
  local box = outbox(KEYS[2], KEYS[3], KEYS[4], KEYS[5])
  finish(box, KEYS[1], KEYS[6], final, now, keep)
  emit(box, KEYS[1], ARGV[5], 'verification.' .. final, now)
  return {HINT, final, attempts, max, 1}
end
if status ~= 'pending' then return {HINT, status, attempts, max, 0} end
if ARGV[1] == 'approve' then
  -- Counted against the sender of the latest message (record_send.lua keeps its type);
  -- 'unknown' when none is recorded yet (a check that overtook its first send's record).
  local country, sender_type = unpack(redis.call('HMGET', KEYS[1], 'country', 'sender_type'))
  count_stat(KEYS[2], now, country, sender_type or 'unknown', 'approved')
  return ended('approved')
end
if tonumber(ARGV[4]) >= max then return ended('max_attempts_reached') end
return {HINT, status, attempts, max, 0}
