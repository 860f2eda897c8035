-- Put a ticket that is waiting or running but on no list back on the pending list.
-- KEYS: pending, ticket, then every processing list   ARGV: ticket, msg
-- Returns 1 when queued again.
local state = redis.call('HGET', KEYS[2], 'state')
if state ~= WAITING and state ~= RUNNING then return 0 end
if redis.call('LPOS', KEYS[1], ARGV[1]) then return 0 end
for i = 3, #KEYS do
  if redis.call('LPOS', KEYS[i], ARGV[1]) then return 0 end
end
redis.call('HSET', KEYS[2], 'state', WAITING, 'msg', ARGV[2])
redis.call('LPUSH', KEYS[1], ARGV[1])
return 1
