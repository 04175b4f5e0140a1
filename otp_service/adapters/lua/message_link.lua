-- Write the pointer from a Telnyx message id to its verification, and take the receipts
-- that arrived for the message before it (receipt_route.lua kept them).
-- KEYS[1] message pointer  KEYS[2] receipts kept for it
-- ARGV[1] '<tenant id> <verification id>'  ARGV[2] how long the pointer lives, ms
-- returns the kept receipts' JSON, oldest first
redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]))
local kept = redis.call('LRANGE', KEYS[2], 0, -1)
redis.call('DEL', KEYS[2])
return kept
