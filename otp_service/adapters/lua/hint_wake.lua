-- Make every tenant of a hint shard due now (a worker starting up looks everywhere once, so
-- work written just before a crash, whose hint was lost with the process, is not left
-- waiting for the idle re-visit).
-- KEYS[1] hint shard  ARGV[1] now_ms
-- returns how many tenants the shard holds
local tenants = redis.call('ZRANGE', KEYS[1], 0, -1)
for _, tenant in ipairs(tenants) do
  redis.call('ZADD', KEYS[1], 'LT', tonumber(ARGV[1]), tenant)
end
return #tenants
