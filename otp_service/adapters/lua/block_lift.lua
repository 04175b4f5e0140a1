-- Lift a block (admin API). A range's block goes with the evidence that condemned it and
-- its strikes, so the next start goes through and the range is judged afresh; a country's
-- circuit breaker goes with the day's count, so its budget is whole again.
-- KEYS[1] tenant record
-- ARGV[1] block id  ARGV[2] now_ms
-- returns {'lifted', block JSON} | {'missing'}
local base, now = tenant_base(KEYS[1]), tonumber(ARGV[2])
local blocks = base .. 'blocks'
local raw = redis.call('HGET', blocks, ARGV[1])
if not raw then return {'missing'} end
redis.call('HDEL', blocks, ARGV[1])
local block = cjson.decode(raw)
if tonumber(block['expires_at']) <= now then return {'missing'} end
if block['limit'] == 'prefix' then
  local held = base .. 'fg:blk:' .. block['value']
  if string.sub(redis.call('GET', held) or '', 1, #ARGV[1]) == ARGV[1] then
    redis.call('DEL', held)
  end
  for _, kind in ipairs({'s', 'a', 'k'}) do
    redis.call('DEL', base .. 'fg:' .. kind .. ':' .. block['value'])
  end
else
  local day = block['value'] .. ':' .. string.format('%d', block['expires_at'])
  redis.call('DEL', base .. 'lim:breaker:' .. day, base .. 'lim:c:' .. day)
end
return {'lifted', raw}
