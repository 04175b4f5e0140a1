-- A page of a scope's opt-outs in number order, read from the index and the records at once.
-- KEYS[1] records  KEYS[2] index
-- ARGV[1] where to start ('-' for the first number, '(<number>' for after it)  ARGV[2] how many
-- returns {number, opt-out JSON, number, opt-out JSON, ...}
local numbers = redis.call('ZRANGEBYLEX', KEYS[2], ARGV[1], '+', 'LIMIT', 0, tonumber(ARGV[2]))
if #numbers == 0 then return {} end
local records = redis.call('HMGET', KEYS[1], unpack(numbers))
local page = {}
for i, number in ipairs(numbers) do
  page[#page + 1] = number
  page[#page + 1] = records[i]
end
return page
