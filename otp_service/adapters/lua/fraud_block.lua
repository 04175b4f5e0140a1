-- Block a destination range the fraud guard condemned (core/fraud.py decided), with the
-- record of it: the block listed for operators, and the `fraud.blocked` event queued, in
-- one step. A range blocked already in this mode is left as it is (concurrent starts may
-- condemn it together); a `monitor` block of a range condemned again in `block` mode is
-- replaced. Each block of a range within a day of the last one is a strike, and lasts
-- the next of the durations the caller gives (doubling, capped).
-- KEYS[1..4] tenant record, outbox work, leases, jobs
-- ARGV[1] prefix  ARGV[2] block id  ARGV[3] mode 'block' | 'monitor'  ARGV[4] reason
-- ARGV[5] now_ms  ARGV[6] durations by strike, ms (JSON)  ARGV[7] event id
-- ARGV[8] the wider prefixes watched around it (JSON): the blocked range's starts are taken
-- out of their counts, since they are its evidence, not theirs; else a quiet range around
-- a blocked one would later be condemned for the attack on it.
-- returns {hint, 'blocked', block JSON} | {hint, 'exists'}
local base, prefix, now = tenant_base(KEYS[1]), ARGV[1], tonumber(ARGV[5])
local held = base .. 'fg:blk:' .. prefix
local before = block_held(redis.call('GET', held), now)
if before then
  if before[3] == ARGV[3] then return {HINT, 'exists'} end
  redis.call('HDEL', base .. 'blocks', before[1])
end
local strikes_key = base .. 'fg:k:' .. prefix
-- '<strikes> <end of the last block>', judged by the service's clock (the key's expiry
-- only cleans up): a block within a day of the last one's end is one more strike.
local strikes = 1
local kept = redis.call('GET', strikes_key)
if kept then
  local count, ended = string.match(kept, '^(%d+) (%d+)$')
  if count and now < tonumber(ended) + 24 * HOUR_MS then strikes = tonumber(count) + 1 end
end
local durations = cjson.decode(ARGV[6])
local lasts = durations[math.min(strikes, #durations)]
redis.call('SET', strikes_key, strikes .. ' ' .. string.format('%d', now + lasts),
  'PX', lasts + 24 * HOUR_MS)
local block = {id = ARGV[2], limit = 'prefix', value = prefix, mode = ARGV[3], reason = ARGV[4],
  created_at = now, expires_at = now + lasts, strikes = strikes}
redis.call('SET', held, ARGV[2] .. ' ' .. string.format('%d', now + lasts) .. ' ' .. ARGV[3],
  'PX', lasts)
record_block(base, block, now)
local ids = redis.call('ZRANGE', base .. 'fg:s:' .. prefix, 0, -1)
for _, wider in ipairs(cjson.decode(ARGV[8])) do
  for first = 1, #ids, 500 do
    local batch = {unpack(ids, first, math.min(first + 499, #ids))}
    redis.call('ZREM', base .. 'fg:s:' .. wider, unpack(batch))
    redis.call('ZREM', base .. 'fg:a:' .. wider, unpack(batch))
  end
end
local box = outbox(KEYS[1], KEYS[2], KEYS[3], KEYS[4])
if takes_events(box) then
  add_job(box, 'ev:' .. ARGV[7], now, cjson.encode({kind = 'event', id = ARGV[7],
    type = 'fraud.blocked', attempt = 0, first_at = now, block = block}))
end
return {HINT, 'blocked', cjson.encode(block)}
