dofile(os.getenv("BENCH_LUA") .. "/common.lua")
dofile(os.getenv("BENCH_LUA") .. "/fresh.lua")
-- Deletes fresh orders, each once (its counters, its event).
request = function()
  return wrk.format("DELETE", "/commandes/" .. next_fresh(), { ["Authorization"] = auth })
end
