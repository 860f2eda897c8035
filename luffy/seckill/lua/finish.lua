-- Finish tickets: mark each bought or failed and drop it from the processing list. A failed
-- ticket gives its unit back unless the outcome says the database had none left.
-- KEYS: processing, then (ticket, sale, buyers) for each ticket
-- ARGV: ttl, then (ticket, outcome, msg) for each ticket; outcome: BOUGHT, FAILED (unit
-- back) or anything else (failed, unit stays gone)
local ttl = tonumber(ARGV[1])
for i = 2, #ARGV, 3 do
  local tk, sk, bk = KEYS[i], KEYS[i + 1], KEYS[i + 2]
  local t, outcome, msg = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local info = redis.call('HMGET', tk, 'sale', 'user', 'state')
  redis.call('LREM', KEYS[1], 0, t)
  if info[1] and info[3] ~= BOUGHT and info[3] ~= FAILED then
    redis.call('HINCRBY', sk, 'queued', -1)
    if outcome == BOUGHT then
      redis.call('HSET', tk, 'state', BOUGHT, 'msg', msg)
    else
      redis.call('HSET', tk, 'state', FAILED, 'msg', msg)
      if redis.call('HGET', bk, info[2]) == t then
        redis.call('HDEL', bk, info[2])
        if outcome == FAILED and redis.call('EXISTS', sk) == 1 then
          redis.call('HINCRBY', sk, 'stock', 1)
        end
      end
    end
    redis.call('EXPIRE', tk, ttl)
  end
end
return 1
