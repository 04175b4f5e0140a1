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

-- Whether the tenant takes events (has an events_webhook_url).
local function takes_events(box)
  local raw = redis.call('GET', box.tenant)
  if not raw then return false end
  local url = cjson.decode(raw)['settings']['events_webhook_url']
  return url ~= nil and url ~= cjson.null
end

-- Queue a tenant event about the verification at `key`, if the tenant takes events.
local function emit(box, key, event_id, event_type, now)
  if not takes_events(box) then return end
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

-- `otp:{t:X}:` from the tenant record's key `otp:{t:X}:tenant`: the prefix of every key in
-- the tenant's slot that a script builds itself (redis_keys.py names the same keys).
local function tenant_base(tenant_key)
  return string.sub(tenant_key, 1, -#'tenant' - 1)
end

local function count_stat(tenant_key, now, country, sender_type, metric)
  local hour = now - now % HOUR_MS
  local key = tenant_base(tenant_key) .. 'stats:' .. hour
  redis.call('HINCRBY', key, country .. '|' .. sender_type .. '|' .. metric, 1)
  redis.call('PEXPIREAT', key, hour + STATS_KEEP_MS)
end

-- Limits (core/limits.py decides which apply; see its docstring for why each exists).
-- A rule is {limit, kind, scope, max, window_ms, per_number}; its counter is the key
-- `<tenant base>lim:<scope>`, with the verification's number appended when per_number.
-- Every rule is checked (limits_pass) before any is counted (limits_take), so a refused
-- request spends nothing, and both run inside the request's own script: no burst of
-- concurrent requests can exceed a limit.
local function limit_key(base, rule, number)
  local key = base .. 'lim:' .. rule[3]
  if rule[6] then key = key .. number end
  return key
end

-- A number's streak of wrong codes, '<failures> <time of the last>': judged by the
-- service's clock (like every time here), not by the key's expiry, which only cleans up.
-- Returns the failures still remembered `window` after the last one, and its time.
local function streak_read(key, now, window)
  local kept = redis.call('GET', key)
  if not kept then return 0, now end
  local space = string.find(kept, ' ')
  local last = tonumber(string.sub(kept, space + 1))
  if last + window <= now then return 0, now end
  return tonumber(string.sub(kept, 1, space - 1)), last
end

-- One more wrong code for the streak at `key`, remembered `window` ms.
local function streak_failed(key, now, window)
  local failures = streak_read(key, now, window)
  redis.call('SET', key, (failures + 1) .. ' ' .. now, 'PX', window)
end

-- The first rule that refuses one more, as {limit, retry_after_ms}, and what was read of
-- each rule's counter (limits_take reuses it); nil when all pass.
-- gcra: the key holds the theoretical arrival time; `max` fit at once, then one per
-- window/max. window: a sorted set of the last window's events (exact). budget: a count
-- until the absolute time window_ms. streak: consecutive failures, counted by their outcome
-- (streak_failed), remembered window_ms after the last one.
local function limits_pass(base, rules, now, number)
  local seen = {}
  for i, rule in ipairs(rules) do
    local kind, key, max, window = rule[2], limit_key(base, rule, number), rule[4], rule[5]
    local wait = 0
    if kind == 'gcra' then
      seen[i] = math.max(tonumber(redis.call('GET', key) or 0), now)
      local after = seen[i] + math.max(1, math.floor(window / max))
      if after - now > window then wait = after - window - now end
    elseif kind == 'window' then
      if redis.call('ZCOUNT', key, '(' .. (now - window), '+inf') >= max then
        local oldest = redis.call('ZRANGEBYSCORE', key, '(' .. (now - window), '+inf',
          'WITHSCORES', 'LIMIT', 0, 1)
        wait = tonumber(oldest[2]) + window - now
      end
    elseif kind == 'budget' then
      if tonumber(redis.call('GET', key) or 0) >= max then wait = window - now end
    elseif kind == 'streak' then
      local failures, last = streak_read(key, now, window)
      if failures >= max then wait = last + window - now end
    end
    if wait > 0 then return {rule[1], wait}, seen end
  end
  return nil, seen
end

-- Count one request against every rule, given what limits_pass read; `token` makes its
-- sliding-log entries unique. Entries that left a window are trimmed now and then (about
-- one request in ten, by its timestamp): the counts only look inside the window anyway.
local function limits_take(base, rules, now, number, token, seen)
  for i, rule in ipairs(rules) do
    local kind, key, max, window = rule[2], limit_key(base, rule, number), rule[4], rule[5]
    if kind == 'gcra' then
      local after = seen[i] + math.max(1, math.floor(window / max))
      redis.call('SET', key, after, 'PX', after - now)
    elseif kind == 'window' then
      if now % 10 == 0 then redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window) end
      redis.call('ZADD', key, now, token .. ':' .. i)
      redis.call('PEXPIRE', key, window)
    elseif kind == 'budget' then
      if redis.call('INCR', key) == 1 then redis.call('PEXPIREAT', key, window + HOUR_MS) end
    end
  end
end

-- The fraud guard's counters (core/fraud.py): per watched prefix of the destination, the
-- starts of the conversion window (`fg:s:`, scored by start time), those approved
-- (`fg:a:`, scored by their start time too: check_finish adds them), and an exponentially
-- decaying count of starts (`fg:r:`, 'value at') whose value/tau is the prefix's usual
-- rate. Returns, per prefix, what PrefixStats holds; `held` flags the prefixes with a
-- block in force (prefix_block read them). The counts only look inside the window, so
-- entries older than it are trimmed now and then (about one start in ten, by its
-- timestamp) rather than by every start.
local function fraud_observe(base, id, now, prefixes, held, velocity, window, grace, tau)
  local out = {}
  local trim = now % 10 == 0
  for i, p in ipairs(prefixes) do
    local starts, approved, rate_key = base .. 'fg:s:' .. p, base .. 'fg:a:' .. p, base .. 'fg:r:' .. p
    if trim then
      redis.call('ZREMRANGEBYSCORE', starts, '-inf', now - window)
      redis.call('ZREMRANGEBYSCORE', approved, '-inf', now - window)
    end
    local rate, at = 0, now
    local kept = redis.call('GET', rate_key)
    if kept then
      local space = string.find(kept, ' ')
      rate = tonumber(string.sub(kept, 1, space - 1))
      at = tonumber(string.sub(kept, space + 1))
    end
    rate = rate * math.exp(-(now - at) / tau)
    redis.call('SET', rate_key, tostring(rate + 1) .. ' ' .. now, 'PX', 7 * tau)
    redis.call('ZADD', starts, now, id)
    redis.call('PEXPIRE', starts, window)
    local aged = redis.call('ZCOUNT', starts, now - window, now - grace)
    table.insert(out, p)
    table.insert(out, redis.call('ZCOUNT', starts, now - velocity, '+inf'))
    table.insert(out, tostring(rate * velocity / tau))
    table.insert(out, aged)
    table.insert(out, aged - redis.call('ZCOUNT', approved, now - window, now - grace))
    table.insert(out, held[i] and 1 or 0)
  end
  return out
end

-- A range's block, `fg:blk:<prefix>` = '<block id> <expires_at> <mode>', as
-- {id, expires_at, mode} while in force by the service's clock (the key's expiry only
-- cleans up), else nil.
local function block_held(kept, now)
  if not kept then return nil end
  local id, ends, mode = string.match(kept, '^(%S+) (%d+) (%S+)$')
  if not id or tonumber(ends) <= now then return nil end
  return {id, tonumber(ends), mode}
end

-- Which of `prefixes` have a block in force in the tenant's current `mode` (a list of
-- booleans: a range blocked in `monitor` mode is judged again once the mode is `block`),
-- and the first that refuses starts, as {'prefix', ms left}, when the mode is `block`.
local function prefix_block(base, prefixes, mode, now)
  local held, refusal = {}, nil
  if #prefixes == 0 then return held, refusal end
  local names = {}
  for i, p in ipairs(prefixes) do names[i] = base .. 'fg:blk:' .. p end
  local blocks = redis.call('MGET', unpack(names))
  for i = 1, #names do
    local block = block_held(blocks[i], now)
    held[i] = block ~= nil and block[3] == mode
    if held[i] and mode == 'block' and not refusal then
      refusal = {'prefix', block[2] - now}
    end
  end
  return held, refusal
end

-- Blocks in force, listed by the admin API: `<base>blocks` holds block id -> block JSON.
-- Entries past their end are dropped whenever a block is written, and the hash expires
-- with the last of its blocks (like every key but the tenant's own records).
local function record_block(base, block, now)
  local blocks = base .. 'blocks'
  local all = redis.call('HGETALL', blocks)
  local last = tonumber(block['expires_at'])
  for i = 1, #all, 2 do
    local ends = tonumber(cjson.decode(all[i + 1])['expires_at'])
    if ends <= now then
      redis.call('HDEL', blocks, all[i])
    elseif ends > last then
      last = ends
    end
  end
  redis.call('HSET', blocks, block['id'], cjson.encode(block))
  redis.call('PEXPIREAT', blocks, last)
end

-- A country's daily budget is spent: its circuit breaker opens until the day ends, listed
-- as a block (limit `country`) that an operator may lift (which refills the budget). The
-- breaker is the day's (named by its end, like the day's count), so the next day's opens
-- afresh whatever the key's expiry.
local function trip_country_breaker(base, id, country, now, day_end)
  local breaker = base .. 'lim:breaker:' .. country .. ':' .. string.format('%d', day_end)
  if redis.call('SET', breaker, id, 'PXAT', day_end, 'NX') then
    record_block(base, {id = id, limit = 'country', value = country, mode = 'block',
      reason = 'the daily send budget for ' .. country .. ' is spent',
      created_at = now, expires_at = day_end}, now)
  end
end
