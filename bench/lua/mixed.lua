dofile(os.getenv("BENCH_LUA") .. "/common.lua")
-- 80 % reads by id, 15 % creates, 5 % status updates (legal no-ops).
local run = os.getenv("BENCH_RUN") or tostring(os.time())
local n = 0
init = function() seed() end
request = function()
  local roll = math.random(1, 100)
  if roll <= 80 then
    return wrk.format("GET", "/commandes/" .. math.random(1, rows), { ["Authorization"] = auth })
  elseif roll <= 95 then
    n = n + 1
    local body = string.format('{"order_id":"M%s-%d-%d","customer_id":"CUST%05d","total_amount":"%d.00"}',
      run, thread_id, n, math.random(1, customers), math.random(5, 1999))
    return wrk.format("POST", "/commandes", { ["Authorization"] = auth, ["Content-Type"] = "application/json" }, body)
  else
    local id = math.random(1, rows)
    return wrk.format("PUT", "/commandes/" .. id .. "/status",
      { ["Authorization"] = auth, ["Content-Type"] = "application/json" }, '"' .. status_of(id) .. '"')
  end
end
