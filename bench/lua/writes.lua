dofile(os.getenv("BENCH_LUA") .. "/common.lua")
-- Sustained writes: creates, and amount changes of generated open
-- (pending or processing) orders: each a real write with its counters and
-- its event.
local run = os.getenv("BENCH_RUN") or tostring(os.time())
local n = 0
init = function() seed() end
request = function()
  n = n + 1
  if n % 2 == 0 then
    local body = string.format(
      '{"order_id":"W%s-%d-%d","customer_id":"CUST%05d","total_amount":"%d.%02d"}',
      run, thread_id, n, math.random(1, customers), math.random(5, 1999), math.random(0, 99))
    return wrk.format("POST", "/commandes", { ["Authorization"] = auth, ["Content-Type"] = "application/json" }, body)
  end
  local id = 20 * math.random(0, math.floor(rows / 20) - 1) + math.random(0, 3)
  if id == 0 then id = 1 end
  local body = string.format('{"total_amount":"%d.%02d"}', math.random(5, 1999), math.random(0, 99))
  return wrk.format("PUT", "/commandes/" .. id, { ["Authorization"] = auth, ["Content-Type"] = "application/json" }, body)
end
