-- Start a verification, or re-send the pending one for the same number, in one step.
-- The caller read the pending index first and chose a mode; the script re-checks that the
-- index still holds what the caller saw, so two concurrent starts cannot both create.
-- A new verification's expiry timer and `verification.created` event are queued with it.
-- A resend ignores the cooldown when no send of the verification was ever recorded and the
-- first one had time to be (its start failed half-way, e.g. Redis stalled after creating it):
-- the user got nothing, and the tenant's retry must not be refused for the cooldown.
-- KEYS[1] pending index of (tenant, phone)  KEYS[2] verification the caller saw ('' mode create: any key in the slot)
-- KEYS[3] verification to create  KEYS[4..7] tenant record, outbox work, leases, jobs
-- ARGV[1] mode 'create' | 'resend'   ARGV[2] id the index held when read ('' for none)
-- ARGV[3] now_ms   ARGV[4] argon2 hash of the code just generated   ARGV[5] resend cooldown ms
-- create only: ARGV[6] new id  ARGV[7] fields as a JSON object  ARGV[8] expires_at ms
--              ARGV[9] how long an ended verification stays readable, ms  ARGV[10] event id
-- ARGV[11] how long a first send may take, ms (after that, no recorded send means none)
-- Abuse protection (core/limits.py, core/fraud.py), checked before anything is written and
-- counted with it: ARGV[12] limit rules (JSON)  ARGV[13] token unique to this start
-- ARGV[14] who asks ('' when unnamed)  ARGV[15] fraud guard mode  ARGV[16] watched prefixes
-- (JSON, empty when the guard is off)  ARGV[17] fraud windows [velocity, conversion, grace,
-- tau] ms (JSON)  ARGV[18] destination country  ARGV[19] first sender type of its chain
-- ARGV[20] id for the country's circuit-breaker block, should this start trip it
-- A new verification keeps its route (`sender_type`, the chain's first) for the stats.
-- returns {hint, 'created', id, prefix stats...} | {hint, 'resent', id}
--       | {hint, 'limited', limit, retry_after_ms} | {hint, 'retry'}
local mode, seen, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local current = redis.call('GET', KEYS[1]) or ''
if current ~= seen then return {HINT, 'retry'} end
local base, asker, country, sender_type = tenant_base(KEYS[4]), ARGV[14], ARGV[18], ARGV[19]
local rules, prefixes = cjson.decode(ARGV[12]), cjson.decode(ARGV[16])

-- Refuse with `limit` (abuse protection: counted as blocked in the stats).
local function refused(limit, wait)
  count_stat(KEYS[4], now, country, sender_type, 'blocked')
  for _, rule in ipairs(rules) do
    if limit == 'country' and rule[1] == 'country' then
      trip_country_breaker(base, ARGV[20], country, now, rule[5])
    end
  end
  return {HINT, 'limited', limit, wait}
end

local held = {}
local function guarded()
  local blocked
  held, blocked = prefix_block(base, prefixes, ARGV[15], now)
  if blocked then return refused(blocked[1], blocked[2]) end
  local limited, seen = limits_pass(base, rules, now, '')
  if limited then return refused(limited[1], limited[2]) end
  limits_take(base, rules, now, '', ARGV[13], seen)
  return nil
end

if mode == 'resend' then
  if seen == '' or not live(KEYS[2], now) then return {HINT, 'retry'} end
  local v = redis.call('HMGET', KEYS[2], 'send_count', 'max_sends', 'next_send_at', 'expires_at',
    'hashes', 'messages', 'created_at', 'asker')
  local sends, max_sends, next_at, expires = tonumber(v[1]), tonumber(v[2]), tonumber(v[3]), tonumber(v[4])
  local never_sent = v[6] == '[]' and now >= tonumber(v[7]) + tonumber(ARGV[11])
  if sends >= max_sends then return {HINT, 'limited', 'max_sends', expires - now} end
  -- Someone else than the last sender asking is not kept waiting: an attacker's resends
  -- must not delay the number's owner (its own limits bound how often it can ask).
  local other = asker ~= '' and asker ~= (v[8] or '')
  if now < next_at and not never_sent and not other then
    return {HINT, 'limited', 'resend_cooldown', next_at - now}
  end
  local refusal = guarded()
  if refusal then return refusal end
  local hashes = cjson.decode(v[5])
  table.insert(hashes, ARGV[4])
  redis.call('HSET', KEYS[2], 'send_count', sends + 1, 'next_send_at', now + tonumber(ARGV[5]),
    'hashes', cjson.encode(hashes), 'asker', asker)
  return {HINT, 'resent', seen}
end

if seen ~= '' and live(KEYS[2], now) then return {HINT, 'retry'} end
local refusal = guarded()
if refusal then return refusal end
local id, expires, keep = ARGV[6], tonumber(ARGV[8]), tonumber(ARGV[9])
local fields = cjson.decode(ARGV[7])
local args = {}
for name, value in pairs(fields) do
  table.insert(args, name)
  table.insert(args, value)
end
redis.call('HSET', KEYS[3], unpack(args))
redis.call('HSET', KEYS[3], 'id', id, 'status', 'pending', 'created_at', now, 'expires_at', expires,
  'send_count', 1, 'next_send_at', now + tonumber(ARGV[5]), 'check_attempts', 0,
  'messages', '[]', 'hashes', cjson.encode({ARGV[4]}), 'asker', asker, 'prefixes', ARGV[16],
  'sender_type', sender_type)
redis.call('PEXPIREAT', KEYS[3], expires + keep)
redis.call('SET', KEYS[1], id, 'PXAT', expires)
local box = outbox(KEYS[4], KEYS[5], KEYS[6], KEYS[7])
add_job(box, 'exp:' .. id, expires, cjson.encode({kind = 'expiry', verification_id = id,
  phone_number = fields['phone_number']}))
emit(box, KEYS[3], ARGV[10], 'verification.created', now)
count_stat(KEYS[4], now, country, sender_type, 'started')
local windows = cjson.decode(ARGV[17])
local stats = fraud_observe(base, id, now, prefixes, held, unpack(windows))
return {HINT, 'created', id, unpack(stats)}
