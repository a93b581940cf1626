dofile(os.getenv("BENCH_LUA") .. "/common.lua")
dofile(os.getenv("BENCH_LUA") .. "/fresh.lua")
-- A real transition: a fresh pending order moves to processing (its
-- counters, its event), each order once.
request = function()
  return wrk.format("PUT", "/commandes/" .. next_fresh() .. "/status",
    { ["Authorization"] = auth, ["Content-Type"] = "application/json" }, '"processing"')
end
