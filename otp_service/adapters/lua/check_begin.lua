-- First half of a check (the Kratos order): take an attempt BEFORE the code is compared, so
-- that concurrent wrong guesses can never use more than max_check_attempts. argon2 cannot
-- run in Lua; the caller compares the code against the returned hashes, then runs
-- check_finish.lua. A malformed code is refused here, without using an attempt, so a
-- check needs no read of its own first.
-- A verification past its expiry is refused; expire.lua, run by the worker, records it.
-- Every attempt in use while the verification is still pending means checks are comparing;
-- if the last was taken longer ago than any compare takes, its check died (its process was
-- killed) and the caller ends the verification as check_finish would have.
-- The asker's and the number's check limits (core/limits.py) are checked and counted here,
-- before an attempt is taken, so an abusive asker is stopped without using the attempts
-- the number's owner needs.
-- KEYS[1] verification  KEYS[2] tenant record
-- ARGV[1] now_ms  ARGV[2] length of the submitted code, -1 when it is not all ASCII digits
-- ARGV[3] the longest a compare can take, ms  ARGV[4] limit rules (JSON)  ARGV[5] unique token
-- returns {'missing'} | {'ended', status} | {'malformed', code_length}
--       | {'limited', limit, retry_after_ms}
--       | {'exhausted', attempts, max, phone number, 1 if the last attempt's check died else 0}
--       | {'ok', attempts (this one included), max, hashes JSON, phone number}
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing'} end
local now = tonumber(ARGV[1])
local v = redis.call('HMGET', KEYS[1], 'status', 'expires_at', 'check_attempts',
  'max_check_attempts', 'hashes', 'code_length', 'phone_number', 'last_check_at')
local status, expires, attempts, max = v[1], tonumber(v[2]), tonumber(v[3]), tonumber(v[4])
if status == 'pending' and now >= expires then return {'ended', 'expired'} end
if status ~= 'pending' then return {'ended', status} end
if tonumber(ARGV[2]) ~= tonumber(v[6]) then return {'malformed', tonumber(v[6])} end
local base, rules = tenant_base(KEYS[2]), cjson.decode(ARGV[4])
local limited, seen = limits_pass(base, rules, now, v[7])
if limited then return {'limited', limited[1], limited[2]} end
if attempts >= max then
  local died = now - tonumber(v[8] or 0) > tonumber(ARGV[3]) and 1 or 0
  return {'exhausted', attempts, max, v[7], died}
end
limits_take(base, rules, now, v[7], ARGV[5], seen)
redis.call('HSET', KEYS[1], 'check_attempts', attempts + 1, 'last_check_at', now)
return {'ok', attempts + 1, max, v[5], v[7]}
