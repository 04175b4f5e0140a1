-- End a pending verification at the caller's word: cancel it, or approve it out of band
-- (Twilio's `Status=approved`: the tenant verified the user some other way), and queue the
-- matching event. One past its expiry is refused as expired (expire.lua, run by the worker,
-- records that). An approval here is no code typed: it is neither counted in the route's
-- conversion nor taken by the fraud guard as evidence that the range's users are real.
-- KEYS[1] verification  KEYS[2..5] tenant record, outbox work, leases, jobs
-- KEYS[6] pending index of its phone number
-- ARGV[1] now_ms  ARGV[2] how long an ended verification stays readable, ms  ARGV[3] event id
-- ARGV[4] the status to end in: 'canceled' | 'approved'
-- returns {hint, 'missing'} | {hint, 'ended', status} | {hint, 'closed'}
if redis.call('EXISTS', KEYS[1]) == 0 then return {HINT, 'missing'} end
local now = tonumber(ARGV[1])
local v = redis.call('HMGET', KEYS[1], 'status', 'expires_at')
if v[1] == 'pending' and now >= tonumber(v[2]) then return {HINT, 'ended', 'expired'} end
if v[1] ~= 'pending' then return {HINT, 'ended', v[1]} end
local box = outbox(KEYS[2], KEYS[3], KEYS[4], KEYS[5])
finish(box, KEYS[1], KEYS[6], ARGV[4], now, tonumber(ARGV[2]))
emit(box, KEYS[1], ARGV[3], 'verification.' .. ARGV[4], now)
return {HINT, 'closed'}
