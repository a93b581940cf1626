dofile(os.getenv("BENCH_LUA") .. "/common.lua")
-- Unique order ids: a run prefix, the thread and a counter.
local run = os.getenv("BENCH_RUN") or tostring(os.time())
local n = 0
init = function() seed() end
request = function()
  n = n + 1
  local body = string.format(
    '{"order_id":"B%s-%d-%d","customer_id":"CUST%05d","total_amount":"%d.%02d"}',
    run, thread_id, n, math.random(1, customers), math.random(5, 1999), math.random(0, 99))
  return wrk.format("POST", "/commandes", { ["Authorization"] = auth, ["Content-Type"] = "application/json" }, body)
end
