-- End a pending verification as failed (every sender of its chain was tried) and queue
-- `verification.failed`.
-- KEYS[1] verification  KEYS[2..5] tenant record, outbox work, leases, jobs
-- KEYS[6] pending index of its phone number
-- ARGV[1] now_ms  ARGV[2] how long an ended verification stays readable, ms  ARGV[3] event id
-- returns {hint, 1} when this call failed the verification, else {hint, 0}
if redis.call('HGET', KEYS[1], 'status') ~= 'pending' then return {HINT, 0} end
local now = tonumber(ARGV[1])
local box = outbox(KEYS[2], KEYS[3], KEYS[4], KEYS[5])
finish(box, KEYS[1], KEYS[6], 'failed', now, tonumber(ARGV[2]))
emit(box, KEYS[1], ARGV[3], 'verification.failed', now)
return {HINT, 1}
