-- Mark the waiting tickets among KEYS running, and say what each ticket's record holds.
-- KEYS: ticket keys   ARGV: msg
-- Returns sale, user, state for each key ('' where the record is gone).
local out = {}
for i = 1, #KEYS do
  local info = redis.call('HMGET', KEYS[i], 'sale', 'user', 'state')
  if info[3] == WAITING then
    redis.call('HSET', KEYS[i], 'state', RUNNING, 'msg', ARGV[1])
    info[3] = RUNNING
  end
  out[#out + 1] = info[1] or ''
  out[#out + 1] = info[2] or ''
  out[#out + 1] = info[3] or ''
end
return out
