-- A buyer with neither an order nor a queued ticket: give the unit back.
-- KEYS: sale, buyers, ticket   ARGV: user, ticket, ttl, msg   Returns 1 when refunded.
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HINCRBY', KEYS[1], 'stock', 1)
redis.call('HINCRBY', KEYS[1], 'queued', -1)
if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('HSET', KEYS[3], 'state', FAILED, 'msg', ARGV[4])
  redis.call('EXPIRE', KEYS[3], tonumber(ARGV[3]))
end
return 1
