-- What one tenant's outbox holds for the queue gauges: per job kind (the member's prefix:
-- `ev`, `exp`, `fb`, `sbx`), the jobs due and not taken plus those leased, and the oldest
-- due time of the ones not taken. Read-only; at most ARGV[2] members of each set are looked
-- at, so a huge backlog costs a bounded scan (and shows as at least that many).
-- KEYS[1..2] outbox work, leases
-- ARGV[1] now_ms  ARGV[2] most members read per set
-- returns {kind, count, oldest due ms (-1: none due), kind, count, oldest, ...}
local now, most = tonumber(ARGV[1]), tonumber(ARGV[2])
local seen, order = {}, {}
local function note(member, due)
  local kind = string.match(member, '^(%a+):') or ''
  local s = seen[kind]
  if not s then
    s = {0, -1}
    seen[kind] = s
    table.insert(order, kind)
  end
  s[1] = s[1] + 1
  if due and (s[2] < 0 or due < s[2]) then s[2] = due end
end
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES', 'LIMIT', 0, most)
for i = 1, #due, 2 do note(due[i], tonumber(due[i + 1])) end
for _, member in ipairs(redis.call('ZRANGE', KEYS[2], 0, most - 1)) do note(member, nil) end
local out = {}
for _, kind in ipairs(order) do
  table.insert(out, kind)
  table.insert(out, seen[kind][1])
  table.insert(out, seen[kind][2])
end
return out
