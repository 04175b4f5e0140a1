-- Write an imported tenant and its key list together (both in the tenant's slot).
-- KEYS[1] the tenant record  KEYS[2] the tenant's API key hash
-- ARGV[1] '1' to replace an existing tenant, '0' to refuse  ARGV[2] the tenant (JSON)
-- ARGV[3..] key id, key record (JSON), pairs
-- returns 1 when written, 0 when the tenant exists and ARGV[1] is '0' (nothing written)
if ARGV[1] ~= '1' and redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('DEL', KEYS[2])
for i = 3, #ARGV, 2 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
return 1
