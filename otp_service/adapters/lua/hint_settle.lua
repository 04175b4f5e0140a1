-- After visiting a tenant, point its hint at the tenant's next due job (or at the next idle
-- re-visit), unless a writer moved the hint meanwhile: then its newer job is still to be
-- seen, and the hint stays where the writer put it.
-- KEYS[1] hint shard (sorted set: tenant id -> when to look, ms)
-- ARGV[1] tenant id  ARGV[2] the score the visit leased it at  ARGV[3] when to look next, ms
-- returns 1 when moved, 0 when a writer had moved it
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) ~= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], tonumber(ARGV[3]), ARGV[1])
return 1
