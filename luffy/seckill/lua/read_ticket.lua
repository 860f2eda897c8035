-- A ticket's owner, state and message for the result route, rate-limited per user.
-- KEYS: rate, ticket   ARGV: limit
-- Returns {'ok', user, state, msg, sale}, {'none'} or {'rate_limited'}.
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], 2) end
if n > tonumber(ARGV[1]) then return {'rate_limited'} end
local t = redis.call('HMGET', KEYS[2], 'user', 'state', 'msg', 'sale')
if not t[1] then return {'none'} end
return {'ok', t[1], t[2], t[3] or '', t[4]}
