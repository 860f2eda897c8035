-- stock := total - buyers, atomically (reconciliation, once the buyers are exact).
-- KEYS: sale, buyers   ARGV: total   Returns {stock before, expected}.
local stock = tonumber(redis.call('HGET', KEYS[1], 'stock'))
local expected = tonumber(ARGV[1]) - redis.call('HLEN', KEYS[2])
redis.call('HSET', KEYS[1], 'total', ARGV[1])
if expected < 0 then
  redis.call('HSET', KEYS[1], 'stock', 0)
  return {stock, expected}
end
if stock ~= expected then redis.call('HSET', KEYS[1], 'stock', expected) end
return {stock, expected}
