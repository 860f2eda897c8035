-- Count one hit in a window: INCR KEYS[1], whose first hit sets the TTL ARGV[1] (seconds).
-- (EXPIRE NX would need Redis 7; this runs on Redis 6.)
local n = redis.call('incr', KEYS[1])
if n == 1 then redis.call('expire', KEYS[1], ARGV[1]) end
return n
