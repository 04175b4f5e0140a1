-- Shared prelude of every script (load_script prepends it): a tenant's outbox, and the end
-- of a verification. Follow-up work (tenant events, expiry timers, fallback jobs) is written
-- by the same script as the change it follows, in the tenant's slot, so a crash or a Redis
-- error can never keep one without the other (a transactional outbox).
--
-- A tenant's outbox is three keys: `work` (sorted set, member -> when due, ms), `leases`
-- (sorted set, member -> when its worker's lease ends) and `jobs` (hash, member -> job JSON).
-- A member is in `work` or in `leases`, never both. Writing a job that is leased replaces its
-- JSON only: the worker that holds it sees the change when it finishes and queues it again.
-- HINT is the earliest due time of the jobs this script wrote (-1: none); every script
-- returns it first, and the caller tells the workers (redis_work.py) where to look.
local HINT = -1

local function outbox(tenant, work, leases, jobs)
  return {tenant = tenant, work = work, leases = leases, jobs = jobs}
end

local function add_job(box, member, due, job)
  redis.call('HSET', box.jobs, member, job)
  if not redis.call('ZSCORE', box.leases, member) then
    redis.call('ZADD', box.work, 'LT', due, member)
  end
  if HINT < 0 or due < HINT then HINT = due end
end

-- When the outbox next needs a worker: its earliest due job or lease end, -1 when empty.
local function next_due(work, leases)
  local first = redis.call('ZRANGE', work, 0, 0, 'WITHSCORES')
  local held = redis.call('ZRANGE', leases, 0, 0, 'WITHSCORES')
  local soonest = first[2] and tonumber(first[2]) or -1
  if held[2] and (soonest < 0 or tonumber(held[2]) < soonest) then soonest = tonumber(held[2]) end
  return soonest
end

local function drop_job(box, member)
  redis.call('ZREM', box.work, member)
  redis.call('HDEL', box.jobs, member)
end

-- The verification as an event shows it: every field but the code hashes and parked receipts.
local function snapshot(key)
  local flat = redis.call('HGETALL', key)
  local fields = {}
  for i = 1, #flat, 2 do
    if flat[i] ~= 'hashes' and flat[i] ~= 'early' then fields[flat[i]] = flat[i + 1] end
  end
  return fields
end

-- Queue a tenant event about the verification at `key`, if the tenant takes events.
local function emit(box, key, event_id, event_type, now)
  local raw = redis.call('GET', box.tenant)
  if not raw then return end
  local url = cjson.decode(raw)['settings']['events_webhook_url']
  if url == nil or url == cjson.null then return end
  add_job(box, 'ev:' .. event_id, now, cjson.encode({kind = 'event', id = event_id,
    type = event_type, attempt = 0, first_at = now, verification = snapshot(key)}))
end

-- End a pending verification: its number is free for a new start, its expiry timer moot.
local function finish(box, key, pending, status, ended_at, keep)
  local id = redis.call('HGET', key, 'id')
  redis.call('HSET', key, 'status', status, 'ended_at', ended_at)
  redis.call('PEXPIREAT', key, ended_at + keep)
  if redis.call('GET', pending) == id then redis.call('DEL', pending) end
  drop_job(box, 'exp:' .. id)
end

-- Message statuses by how far they got: a receipt never moves a message back.
local RANK = {queued = 1, sending = 2, sent = 3, delivery_unconfirmed = 4,
  delivered = 5, sending_failed = 5, delivery_failed = 5, expired = 5}
-- After these, the next sender is tried.
local UNDELIVERED = {sending_failed = true, delivery_failed = true, expired = true}
-- A message in one of these has no final receipt yet: silence may follow.
local IN_FLIGHT = {queued = true, sending = true, sent = true, delivery_unconfirmed = true}

-- Apply a receipt {status, error_codes, at} to a message; true when it moved the message on.
local function apply_receipt(message, receipt)
  if (RANK[receipt['status']] or 0) <= (RANK[message['status']] or 0) then return false end
  message['status'] = receipt['status']
  if receipt['error_codes'] ~= '' then message['error_codes'] = receipt['error_codes'] end
  message['updated_at'] = receipt['at']
  return true
end

-- Ask the fallback worker to re-send through the next sender (one job per message).
local function want_fallback(box, verification_id, message_id, reason, due)
  add_job(box, 'fb:' .. verification_id .. ':' .. message_id, due, cjson.encode({
    kind = 'fallback', verification_id = verification_id, message_id = message_id,
    reason = reason}))
end

-- A verification that is pending and not past its expiry.
local function live(key, now)
  local status, expires = unpack(redis.call('HMGET', key, 'status', 'expires_at'))
  return status == 'pending' and now < tonumber(expires)
end


-- Hourly counters behind GET /v1/stats (redis_keys.stats): one hash per tenant and hour,
-- field `<country>|<sender_type>|<metric>`, so a report reads a few hashes instead of
-- scanning verifications. `tenant_key` is the tenant record key (`otp:{t:X}:tenant`), which
-- every script that counts already has; the counters live in the same slot.
local STATS_KEEP_MS = 40 * 24 * 3600 * 1000
local HOUR_MS = 3600 * 1000
local function count_stat(tenant_key, now, country, sender_type, metric)
  local hour = now - now % HOUR_MS
  local key = string.sub(tenant_key, 1, -#'tenant' - 1) .. 'stats:' .. hour
  redis.call('HINCRBY', key, country .. '|' .. sender_type .. '|' .. metric, 1)
  redis.call('PEXPIREAT', key, hour + STATS_KEEP_MS)
end
