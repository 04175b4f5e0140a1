-- Append one send attempt to a verification's messages and, when it ends the verification
-- (every sender refused), mark it failed and free the phone number for a new start.
-- KEYS[1] verification  KEYS[2] pending index of its phone number
-- ARGV[1] message as JSON  ARGV[2] '1' to fail the verification  ARGV[3] now_ms
-- ARGV[4] how long an ended verification stays readable, ms
-- returns 'ended' when this call failed the verification, else its status ('missing' if gone)
if redis.call('EXISTS', KEYS[1]) == 0 then return 'missing' end
local v = redis.call('HMGET', KEYS[1], 'messages', 'status', 'id')
local messages = cjson.decode(v[1])
table.insert(messages, cjson.decode(ARGV[1]))
redis.call('HSET', KEYS[1], 'messages', cjson.encode(messages))
if ARGV[2] == '1' and v[2] == 'pending' then
  local now = tonumber(ARGV[3])
  redis.call('HSET', KEYS[1], 'status', 'failed', 'ended_at', now)
  redis.call('PEXPIREAT', KEYS[1], now + tonumber(ARGV[4]))
  if redis.call('GET', KEYS[2]) == v[3] then redis.call('DEL', KEYS[2]) end
  return 'ended'
end
return v[2]
