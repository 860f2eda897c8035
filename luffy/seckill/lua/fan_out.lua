-- One more order task, when the backlog is longer than a batch and a slot is free (at most
-- one request a second).
-- KEYS: pending, fanout, the usable slots' locks   ARGV: batch size   Returns 1 to send one.
if redis.call('LLEN', KEYS[1]) < tonumber(ARGV[1]) then return 0 end
local held = 0
for i = 3, #KEYS do held = held + redis.call('EXISTS', KEYS[i]) end
if held >= #KEYS - 2 then return 0 end
if not redis.call('SET', KEYS[2], '1', 'NX', 'PX', 1000) then return 0 end
return 1
