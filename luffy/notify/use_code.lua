-- Use a verification code once: delete KEYS[1] when it holds ARGV[1] (1), else 0.
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
