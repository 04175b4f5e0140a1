-- Revoke an API key: delete its lookup pointer and unlist it, if it is still as read.
-- KEYS[1] the tenant's key list  KEYS[2] the lookup of the digest in the record read
-- ARGV[1] key id  ARGV[2] the record as read
-- returns 1 when revoked, 0 when the record changed meanwhile (read again)
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[2])
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
