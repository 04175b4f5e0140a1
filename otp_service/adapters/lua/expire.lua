-- Record that a pending verification reached its expiry (its timer's job, run by the worker)
-- and queue `verification.expired`.
-- KEYS[1] verification  KEYS[2..5] tenant record, outbox work, leases, jobs
-- KEYS[6] pending index of its phone number
-- ARGV[1] now_ms  ARGV[2] how long an ended verification stays readable, ms  ARGV[3] event id
-- returns {hint, 1} when this call expired it, {hint, 0} otherwise (gone, ended, or not yet due)
local v = redis.call('HMGET', KEYS[1], 'status', 'expires_at')
if v[1] ~= 'pending' or tonumber(ARGV[1]) < tonumber(v[2]) then return {HINT, 0} end
local box = outbox(KEYS[2], KEYS[3], KEYS[4], KEYS[5])
finish(box, KEYS[1], KEYS[6], 'expired', tonumber(v[2]), tonumber(ARGV[2]))
emit(box, KEYS[1], ARGV[3], 'verification.expired', tonumber(ARGV[1]))
return {HINT, 1}
