-- Append one send attempt to a verification's messages, with the work that follows it:
-- receipts that arrived before the message was known are applied now and reported
-- (`message.status`, as message_status.lua would have), a reported failure queues the
-- fallback, a silence timer is set when the tenant has a delivery timeout, and when the
-- attempt ends the verification (every sender refused) it is failed and its
-- `verification.failed` queued. The attempt is counted in the tenant's stats (count_stat):
-- `sent` when Telnyx took it, and `delivered` or `failed_sends` when it is already final
-- (refused at once, or settled by receipts that came first: message_status.lua only counts
-- the receipts it applies itself), under the sender that sent it.
-- KEYS[1] verification  KEYS[2..5] tenant record, outbox work, leases, jobs
-- KEYS[6] pending index of its phone number
-- ARGV[1] message as JSON  ARGV[2] '1' to fail the verification  ARGV[3] now_ms
-- ARGV[4] how long an ended verification stays readable, ms  ARGV[5] event id (of the
-- `message.status` of a sent message, or the `verification.failed` of a refused one: never both)
-- ARGV[6] delivery timeout, ms ('' for none)  ARGV[7] JSON array of receipts kept by the
-- message's pointer before it existed ({status, error_codes, at})  ARGV[8] a sandbox
-- message's receipts job (redis_work.SandboxReceiptJob JSON, due now; '' for none), queued
-- with the message so that a restart never loses its scripted receipts
-- returns {hint, 'ended'} when this call failed the verification, else {hint, its status}
-- ({hint, 'missing'} if gone)
if redis.call('EXISTS', KEYS[1]) == 0 then return {HINT, 'missing'} end
local now = tonumber(ARGV[3])
local v = redis.call('HMGET', KEYS[1], 'messages', 'status', 'id', 'early', 'expires_at',
  'country')
local messages = cjson.decode(v[1])
local message = cjson.decode(ARGV[1])
local box = outbox(KEYS[2], KEYS[3], KEYS[4], KEYS[5])
local pending = v[2] == 'pending' and now < tonumber(v[5])
local moved = false
if message['id'] ~= cjson.null then
  local early = cjson.decode(v[4] or '{}')
  for _, receipt in ipairs(cjson.decode(ARGV[7])) do
    moved = apply_receipt(message, receipt) or moved
  end
  if early[message['id']] then
    moved = apply_receipt(message, early[message['id']]) or moved
    early[message['id']] = nil
    redis.call('HSET', KEYS[1], 'early', next(early) and cjson.encode(early) or '{}')
  end
  if pending and UNDELIVERED[message['status']] then
    want_fallback(box, v[3], message['id'], 'failed', now)
  elseif pending and ARGV[6] ~= '' and IN_FLIGHT[message['status']] then
    want_fallback(box, v[3], message['id'], 'silent', now + tonumber(ARGV[6]))
  end
end
if ARGV[8] ~= '' then add_job(box, 'sbx:' .. message['id'], now, ARGV[8]) end
table.insert(messages, message)
local sender_type = message['sender_type']
redis.call('HSET', KEYS[1], 'messages', cjson.encode(messages))
if message['id'] ~= cjson.null then count_stat(KEYS[2], now, v[6], sender_type, 'sent') end
if message['status'] == 'delivered' then
  count_stat(KEYS[2], now, v[6], sender_type, 'delivered')
elseif UNDELIVERED[message['status']] then
  count_stat(KEYS[2], now, v[6], sender_type, 'failed_sends')
end
if ARGV[2] == '1' and v[2] == 'pending' then
  finish(box, KEYS[1], KEYS[6], 'failed', now, tonumber(ARGV[4]))
  emit(box, KEYS[1], ARGV[5], 'verification.failed', now)
  return {HINT, 'ended'}
end
if moved then emit(box, KEYS[1], ARGV[5], 'message.status', now) end
return {HINT, v[2]}
