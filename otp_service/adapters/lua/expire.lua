-- Record that a pending verification reached its expiry (run by the worker at expires_at).
-- KEYS[1] verification  KEYS[2] pending index of its phone number
-- ARGV[1] now_ms  ARGV[2] how long an ended verification stays readable, ms
-- returns 1 when this call expired it, 0 otherwise (gone, ended, or not yet due)
local v = redis.call('HMGET', KEYS[1], 'status', 'expires_at', 'id')
if v[1] ~= 'pending' or tonumber(ARGV[1]) < tonumber(v[2]) then return 0 end
local expires = tonumber(v[2])
redis.call('HSET', KEYS[1], 'status', 'expired', 'ended_at', expires)
redis.call('PEXPIREAT', KEYS[1], expires + tonumber(ARGV[2]))
if redis.call('GET', KEYS[2]) == v[3] then redis.call('DEL', KEYS[2]) end
return 1
