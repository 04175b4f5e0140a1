-- Find which verification a Telnyx message belongs to, or keep the receipt until the
-- message's pointer is written (Telnyx can report before its send call has answered).
-- The pointer's writer (message_link.lua) takes what was kept, in the same slot, so a
-- receipt is either routed here or collected there, never lost between the two.
-- KEYS[1] message pointer  KEYS[2] receipts kept for it
-- ARGV[1] receipt JSON ({status, error_codes, at})  ARGV[2] how long to keep it, ms
-- returns '<tenant id> <verification id>', or false when kept
local pointer = redis.call('GET', KEYS[1])
if pointer then return pointer end
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[2]))
return false
