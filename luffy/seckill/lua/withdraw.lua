-- Undo an admission whose kick could not be sent, if no order task has taken it yet.
-- KEYS: pending, kick, ticket, sale, buyers   ARGV: ticket, user
-- Returns 1 when withdrawn, 0 when an order task already took the ticket.
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
if redis.call('HGET', KEYS[5], ARGV[2]) == ARGV[1] then
  redis.call('HDEL', KEYS[5], ARGV[2])
  redis.call('HINCRBY', KEYS[4], 'stock', 1)
end
redis.call('HINCRBY', KEYS[4], 'queued', -1)
redis.call('DEL', KEYS[3])
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
return 1
