-- Cancel a pending verification. One past its expiry is refused as expired (expire.lua,
-- run by the worker, records that).
-- KEYS[1] verification  KEYS[2] pending index of its phone number
-- ARGV[1] now_ms  ARGV[2] how long an ended verification stays readable, ms
-- returns {'missing'} | {'ended', status} | {'canceled'}
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing'} end
local now = tonumber(ARGV[1])
local v = redis.call('HMGET', KEYS[1], 'status', 'expires_at', 'id')
if v[1] == 'pending' and now >= tonumber(v[2]) then return {'ended', 'expired'} end
if v[1] ~= 'pending' then return {'ended', v[1]} end
redis.call('HSET', KEYS[1], 'status', 'canceled', 'ended_at', now)
redis.call('PEXPIREAT', KEYS[1], now + tonumber(ARGV[2]))
if redis.call('GET', KEYS[2]) == v[3] then redis.call('DEL', KEYS[2]) end
return {'canceled'}
