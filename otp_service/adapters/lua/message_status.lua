-- Apply a Telnyx delivery receipt to the message it is about. Receipts arrive out of order
-- and twice: a final status (delivered, failed, ...) is never replaced by an earlier one.
-- A change queues `message.status`; a reported failure of a pending verification's message
-- queues its fallback, in this same step. A receipt for a message not recorded yet (Telnyx
-- can report before its send call has answered) is kept in the verification, and
-- record_send.lua applies it when the message arrives. A receipt that moves a message to its
-- final status counts it in the tenant's stats (`delivered` or `failed_sends`); a duplicate
-- or late receipt moves nothing, so it is never counted twice.
-- KEYS[1] verification  KEYS[2..5] tenant record, outbox work, leases, jobs
-- ARGV[1] Telnyx message id  ARGV[2] new status  ARGV[3] error codes, comma-separated
-- ARGV[4] now_ms  ARGV[5] event id
-- (codes are kept as one string: Redis's cjson would turn an empty array into {})
-- returns {hint, 'updated' | 'unchanged' | 'parked' | 'unknown'}
if redis.call('EXISTS', KEYS[1]) == 0 then return {HINT, 'unknown'} end
local now = tonumber(ARGV[4])
local receipt = {status = ARGV[2], error_codes = ARGV[3], at = now}
local v = redis.call('HMGET', KEYS[1], 'messages', 'id', 'early', 'country')
local messages = cjson.decode(v[1])
for _, message in ipairs(messages) do
  if message['id'] == ARGV[1] then
    if not apply_receipt(message, receipt) then return {HINT, 'unchanged'} end
    redis.call('HSET', KEYS[1], 'messages', cjson.encode(messages))
    if ARGV[2] == 'delivered' then
      count_stat(KEYS[2], now, v[4], message['sender_type'], 'delivered')
    elseif UNDELIVERED[ARGV[2]] then
      count_stat(KEYS[2], now, v[4], message['sender_type'], 'failed_sends')
    end
    local box = outbox(KEYS[2], KEYS[3], KEYS[4], KEYS[5])
    if UNDELIVERED[ARGV[2]] and live(KEYS[1], now) then
      want_fallback(box, v[2], ARGV[1], 'failed', now)
    end
    emit(box, KEYS[1], ARGV[5], 'message.status', now)
    return {HINT, 'updated'}
  end
end
local early = cjson.decode(v[3] or '{}')
local kept = early[ARGV[1]]
if kept == nil or (RANK[ARGV[2]] or 0) > (RANK[kept['status']] or 0) then
  early[ARGV[1]] = receipt
  redis.call('HSET', KEYS[1], 'early', cjson.encode(early))
end
return {HINT, 'parked'}
