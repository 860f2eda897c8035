-- Update a sale's settings keeping its buyers; the stock moves by the change of total.
-- KEYS: sale   ARGV: total, start, end, state, course
-- Returns 0 when the sale is not in Redis (the caller writes it whole).
local old = redis.call('HGET', KEYS[1], 'total')
if not old then return 0 end
redis.call('HINCRBY', KEYS[1], 'stock', tonumber(ARGV[1]) - tonumber(old))
redis.call('HSET', KEYS[1], 'total', ARGV[1], 'start', ARGV[2], 'end', ARGV[3],
           'state', ARGV[4], 'course', ARGV[5])
return 1
