-- Take the right to re-send a verification through its next sender after its latest message
-- failed or stayed silent, and keep the hash of the code the fallback SMS will carry.
-- There is one fallback job per message (duplicate receipts and the silence timer share
-- it), so the only way to be asked twice is a worker that died mid-send and left its job to
-- be taken again: the latest message is then still the one that failed (the send was never
-- recorded), and the claim is granted again; once a fallback is recorded, the latest message
-- is another one and every later ask does nothing. Every code claimed stays valid, since an
-- SMS of a worker that died may still arrive.
-- KEYS[1] verification
-- ARGV[1] the message that failed or stayed silent  ARGV[2] 'failed' | 'silent'
-- ARGV[3] now_ms  ARGV[4] argon2 hash of the fallback's code
-- returns the chain position of that message, or -1 when there is nothing to do
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local v = redis.call('HMGET', KEYS[1], 'status', 'expires_at', 'messages', 'hashes')
if v[1] ~= 'pending' or tonumber(ARGV[3]) >= tonumber(v[2]) then return -1 end
local messages = cjson.decode(v[3])
local latest = messages[#messages]
if latest == nil or latest['id'] ~= ARGV[1] then return -1 end
local wanted = ARGV[2] == 'silent' and IN_FLIGHT or UNDELIVERED
if not wanted[latest['status']] then return -1 end
local hashes = cjson.decode(v[4])
table.insert(hashes, ARGV[4])
redis.call('HSET', KEYS[1], 'hashes', cjson.encode(hashes))
return latest['position']
