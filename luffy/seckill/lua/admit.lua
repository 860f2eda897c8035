-- Admit one buyer, or say why not, in one atomic step: a buyer is never admitted without a
-- unit of stock taken, a ticket written and the ticket queued for the order task.
-- KEYS: ready, course, sale, buyers, ticket, user rate, address rate, pending, kick
-- ARGV: user, now, ticket, user limit, address limit, kick seconds, sale id expected, msg
-- Returns {verdict, sale, ...}: 'moved' when the course points at another sale than the
-- caller expected (the caller asks again with that sale's keys).
if redis.call('EXISTS', KEYS[1]) == 0 then return {'unavailable'} end
local sale = redis.call('GET', KEYS[2])
if not sale then return {'no_sale'} end
if sale ~= ARGV[7] then return {'moved', sale} end
local n = redis.call('INCR', KEYS[6])
if n == 1 then redis.call('EXPIRE', KEYS[6], 2) end
if n > tonumber(ARGV[4]) then return {'rate_limited'} end
n = redis.call('INCR', KEYS[7])
if n == 1 then redis.call('EXPIRE', KEYS[7], 2) end
if n > tonumber(ARGV[5]) then return {'rate_limited'} end
local s = redis.call('HMGET', KEYS[3], 'stock', 'start', 'end', 'state')
if not s[1] then return {'no_sale'} end
local mine = redis.call('HGET', KEYS[4], ARGV[1])
if mine then return {'already', sale, mine} end
if s[4] ~= 'open' then return {'closed', sale} end
local now = tonumber(ARGV[2])
if now < tonumber(s[2]) then return {'not_started', sale} end
if now >= tonumber(s[3]) then return {'ended', sale} end
if tonumber(s[1]) <= 0 then return {'sold_out', sale} end
redis.call('HINCRBY', KEYS[3], 'stock', -1)
redis.call('HINCRBY', KEYS[3], 'queued', 1)
redis.call('HSET', KEYS[4], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[5], 'sale', sale, 'user', ARGV[1], 'state', WAITING, 'msg', ARGV[8],
           'at', ARGV[2])
redis.call('LPUSH', KEYS[8], ARGV[3])
local kick = 0
if redis.call('SET', KEYS[9], ARGV[3], 'NX', 'EX', tonumber(ARGV[6])) then kick = 1 end
return {'admitted', sale, kick}
