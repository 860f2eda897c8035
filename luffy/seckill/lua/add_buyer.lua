-- An order's buyer missing from Redis: add it, taking its unit.
-- KEYS: sale, buyers   ARGV: user, ticket   Returns 1 when added.
if redis.call('HGET', KEYS[2], ARGV[1]) == ARGV[2] then return 0 end
local had = redis.call('HEXISTS', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
if had == 0 then redis.call('HINCRBY', KEYS[1], 'stock', -1) end
return 1
