-- Take the right to re-send a verification through its next sender, once per failed message.
-- Delivery receipts and silence timers can both ask for a fallback of the same message, and
-- Telnyx sends receipts twice: only the first ask for the latest message of a pending
-- verification wins; it also stores the hash of the code the fallback SMS will carry.
-- KEYS[1] verification
-- ARGV[1] the message that failed or stayed silent  ARGV[2] 'failed' | 'silent'
-- ARGV[3] now_ms  ARGV[4] argon2 hash of the fallback's code
-- returns the chain position of that message, or -1 when there is nothing to do
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local v = redis.call('HMGET', KEYS[1], 'status', 'expires_at', 'messages', 'fallback_of', 'hashes')
if v[1] ~= 'pending' or tonumber(ARGV[3]) >= tonumber(v[2]) then return -1 end
if v[4] == ARGV[1] then return -1 end
local messages = cjson.decode(v[3])
local latest = messages[#messages]
if latest == nil or latest['id'] ~= ARGV[1] then return -1 end
local silent = {queued = true, sending = true, sent = true, delivery_unconfirmed = true}
local failed = {sending_failed = true, delivery_failed = true, expired = true}
local wanted = ARGV[2] == 'silent' and silent or failed
if not wanted[latest['status']] then return -1 end
local hashes = cjson.decode(v[5])
table.insert(hashes, ARGV[4])
redis.call('HSET', KEYS[1], 'fallback_of', ARGV[1], 'hashes', cjson.encode(hashes))
return latest['position']
