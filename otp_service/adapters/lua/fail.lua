-- End a pending verification as failed: every sender of its chain was tried.
-- KEYS[1] verification  KEYS[2] pending index of its phone number
-- ARGV[1] now_ms  ARGV[2] how long an ended verification stays readable, ms
-- returns 1 when this call failed the verification, else 0
local v = redis.call('HMGET', KEYS[1], 'status', 'id')
if v[1] ~= 'pending' then return 0 end
local now = tonumber(ARGV[1])
redis.call('HSET', KEYS[1], 'status', 'failed', 'ended_at', now)
redis.call('PEXPIREAT', KEYS[1], now + tonumber(ARGV[2]))
if redis.call('GET', KEYS[2]) == v[2] then redis.call('DEL', KEYS[2]) end
return 1
