-- Move up to ARGV[1] tickets from the pending list onto a drain slot's processing list.
-- KEYS: pending, processing   Returns the tickets moved, oldest first.
local taken = {}
for i = 1, tonumber(ARGV[1]) do
  local t = redis.call('RPOPLPUSH', KEYS[1], KEYS[2])
  if not t then break end
  taken[#taken + 1] = t
end
return taken
