-- Cancel a pending verification; an expired one is recorded as expired instead.
-- KEYS[1] verification  KEYS[2] pending index of its phone number
-- ARGV[1] now_ms  ARGV[2] how long an ended verification stays readable, ms
-- returns {'missing'} | {'ended', status} | {'canceled'}
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing'} end
local now, keep = tonumber(ARGV[1]), tonumber(ARGV[2])
local v = redis.call('HMGET', KEYS[1], 'status', 'expires_at', 'id')
local status, expires = v[1], tonumber(v[2])
local function finish(final, at)
  redis.call('HSET', KEYS[1], 'status', final, 'ended_at', at)
  redis.call('PEXPIREAT', KEYS[1], at + keep)
  if redis.call('GET', KEYS[2]) == v[3] then redis.call('DEL', KEYS[2]) end
end
if status == 'pending' and now >= expires then
  finish('expired', expires)
  return {'ended', 'expired'}
end
if status ~= 'pending' then return {'ended', status} end
finish('canceled', now)
return {'canceled'}
