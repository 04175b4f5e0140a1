-- Replace a value only if it is still the one the caller read (optimistic update).
-- KEYS[1] the key  ARGV[1] the value read  ARGV[2] the new value
-- returns 1 when replaced, 0 when the value changed meanwhile (read again) or is gone
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1
