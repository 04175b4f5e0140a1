-- Move an API key's lookup pointer from its digest under the previous secret to its digest
-- under the current one, unless the key was revoked or changed meanwhile.
-- KEYS[1] the tenant's key list  KEYS[2] the old lookup  KEYS[3] the new lookup
-- ARGV[1] key id  ARGV[2] the record as read  ARGV[3] the record with the new digest
-- ARGV[4] the pointer's value ("<tenant id> <key id>")
-- returns 1 when moved, 0 when the record or the old pointer changed (nothing written)
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
if redis.call('GET', KEYS[2]) ~= ARGV[4] then return 0 end
redis.call('SET', KEYS[3], ARGV[4])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('DEL', KEYS[2])
return 1
