-- Cancel a pending verification and queue its `verification.canceled` event. One past its
-- expiry is refused as expired (expire.lua, run by the worker, records that).
-- KEYS[1] verification  KEYS[2..5] tenant record, outbox work, leases, jobs
-- KEYS[6] pending index of its phone number
-- ARGV[1] now_ms  ARGV[2] how long an ended verification stays readable, ms  ARGV[3] event id
-- returns {hint, 'missing'} | {hint, 'ended', status} | {hint, 'canceled'}
if redis.call('EXISTS', KEYS[1]) == 0 then return {HINT, 'missing'} end
local now = tonumber(ARGV[1])
local v = redis.call('HMGET', KEYS[1], 'status', 'expires_at')
if v[1] == 'pending' and now >= tonumber(v[2]) then return {HINT, 'ended', 'expired'} end
if v[1] ~= 'pending' then return {HINT, 'ended', v[1]} end
local box = outbox(KEYS[2], KEYS[3], KEYS[4], KEYS[5])
finish(box, KEYS[1], KEYS[6], 'canceled', now, tonumber(ARGV[2]))
emit(box, KEYS[1], ARGV[3], 'verification.canceled', now)
return {HINT, 'canceled'}
