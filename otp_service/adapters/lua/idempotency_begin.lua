-- Claim an Idempotency-Key, or find what an earlier request with it did.
-- KEYS[1] idempotency record
-- ARGV[1] fingerprint of the request body  ARGV[2] how long a claim holds while in flight, ms
-- returns {'claimed'} | {'conflict'} | {'in_flight'} | {'done', stored response JSON}
local raw = redis.call('GET', KEYS[1])
if not raw then
  redis.call('SET', KEYS[1], cjson.encode({fingerprint = ARGV[1]}), 'PX', ARGV[2])
  return {'claimed'}
end
local record = cjson.decode(raw)
if record['fingerprint'] ~= ARGV[1] then return {'conflict'} end
if record['response'] == nil then return {'in_flight'} end
return {'done', record['response']}
