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
-- ARGV[6] how long the number's streak of wrong codes is remembered, ms (limit `phone_number`)
-- ARGV[7] the fraud guard's conversion window, ms
-- A wrong code lengthens the number's streak of failures; a right one ends the streak and
-- tells the fraud guard that this start converted.
-- returns {hint, status after the change, check_attempts, max_check_attempts, 1 if this call ended it else 0};
-- {hint, 'missing'} when gone
if redis.call('EXISTS', KEYS[1]) == 0 then return {HINT, 'missing'} end
local now, keep = tonumber(ARGV[2]), tonumber(ARGV[3])
local v = redis.call('HMGET', KEYS[1], 'status', 'check_attempts', 'max_check_attempts',
  'phone_number', 'id', 'created_at', 'prefixes', 'country', 'sender_type')
local status, attempts, max = v[1], tonumber(v[2]), tonumber(v[3])
local base = tenant_base(KEYS[2])
local streak = base .. 'lim:f:' .. v[4]
if ARGV[1] == 'approve' then
  redis.call('DEL', streak)
  for _, p in ipairs(cjson.decode(v[7] or '[]')) do
    redis.call('ZADD', base .. 'fg:a:' .. p, v[6], v[5])
    redis.call('PEXPIRE', base .. 'fg:a:' .. p, tonumber(ARGV[7]))
  end
else
  streak_failed(streak, now, tonumber(ARGV[6]))
end
local function ended(final)
  local box = outbox(KEYS[2], KEYS[3], KEYS[4], KEYS[5])
  finish(box, KEYS[1], KEYS[6], final, now, keep)
  emit(box, KEYS[1], ARGV[5], 'verification.' .. final, now)
  return {HINT, final, attempts, max, 1}
end
if status ~= 'pending' then return {HINT, status, attempts, max, 0} end
if ARGV[1] == 'approve' then
  -- Counted like the start (start.lua keeps its route: the first sender of the chain), so
  -- that approved / started is the conversion of a route.
  count_stat(KEYS[2], now, v[8], v[9], 'approved')
  return ended('approved')
end
if tonumber(ARGV[4]) >= max then return ended('max_attempts_reached') end
return {HINT, status, attempts, max, 0}
