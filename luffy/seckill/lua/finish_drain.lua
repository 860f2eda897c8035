-- Release the drainer's lock and clear the kick together, only when nothing is pending and
-- no unlocked slot holds a left-over batch: an admission after this sees no kick and sends
-- a new order task.
-- KEYS: pending, kick, own lock, then each slot's lock and processing list   ARGV: token
-- Returns 1 (stopped), 0 (tickets pending) or -1 - slot (a left-over batch to adopt).
if redis.call('LLEN', KEYS[1]) > 0 then return 0 end
for i = 4, #KEYS, 2 do
  if KEYS[i] ~= KEYS[3] and redis.call('EXISTS', KEYS[i]) == 0
     and redis.call('LLEN', KEYS[i + 1]) > 0 then
    return -1 - (i - 4) / 2
  end
end
redis.call('DEL', KEYS[2])
if redis.call('GET', KEYS[3]) == ARGV[1] then redis.call('DEL', KEYS[3]) end
return 1
