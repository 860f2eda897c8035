-- wrk script for bench/seckill.py: every request is a buy POST from the next user of a file.
--   wrk -t2 -c32 -d5s -s bench/seckill_wrk.lua URL -- USERS_FILE COURSE_ID PATH THREADS
-- USERS_FILE has one "session-cookie<TAB>csrf-token" line per user; thread i takes lines i, i+T...
-- It prints "status_5xx: N" and "status_409: N" at the end.
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  path = args[3]
  body = '{"course_id": ' .. args[2] .. '}'
  local count = tonumber(args[4])
  cookies, tokens = {}, {}
  local i = 0
  for line in io.lines(args[1]) do
    if i % count == id then
      local c, t = line:match("([^\t]+)\t([^\t]+)")
      cookies[#cookies + 1] = c
      tokens[#tokens + 1] = t
    end
    i = i + 1
  end
  k = 0
  s5xx = 0
  s409 = 0
end

function request()
  k = k % #cookies + 1
  return wrk.format("POST", path, {
    ["Cookie"] = "session=" .. cookies[k],
    ["X-CSRFToken"] = tokens[k],
    ["Content-Type"] = "application/json",
  }, body)
end

function response(status, headers, body)
  if status >= 500 then s5xx = s5xx + 1 end
  if status == 409 then s409 = s409 + 1 end
end

function done(summary, latency, requests)
  local e5, e409 = 0, 0
  for _, thread in ipairs(threads) do
    e5 = e5 + thread:get("s5xx")
    e409 = e409 + thread:get("s409")
  end
  io.write(string.format("status_5xx: %d\nstatus_409: %d\n", e5, e409))
end
