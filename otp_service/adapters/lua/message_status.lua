-- Apply a Telnyx delivery receipt to the message it is about. Receipts arrive out of order
-- and twice: a final status (delivered, failed, ...) is never replaced by an earlier one.
-- KEYS[1] verification
-- ARGV[1] Telnyx message id  ARGV[2] new status  ARGV[3] error codes, comma-separated  ARGV[4] now_ms
-- (codes are kept as one string: Redis's cjson would turn an empty array into {})
-- returns 'updated' | 'unchanged' | 'unknown'
if redis.call('EXISTS', KEYS[1]) == 0 then return 'unknown' end
local rank = {queued = 1, sending = 2, sent = 3, delivery_unconfirmed = 4,
  delivered = 5, sending_failed = 5, delivery_failed = 5, expired = 5}
local messages = cjson.decode(redis.call('HGET', KEYS[1], 'messages'))
for _, message in ipairs(messages) do
  if message['id'] == ARGV[1] then
    local old, new = rank[message['status']] or 0, rank[ARGV[2]] or 0
    if new <= old then return 'unchanged' end
    message['status'] = ARGV[2]
    if ARGV[3] ~= '' then message['error_codes'] = ARGV[3] end
    message['updated_at'] = tonumber(ARGV[4])
    redis.call('HSET', KEYS[1], 'messages', cjson.encode(messages))
    return 'updated'
  end
end
return 'unknown'
