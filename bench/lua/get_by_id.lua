dofile(os.getenv("BENCH_LUA") .. "/common.lua")
init = function() seed() end
request = function()
  return wrk.format("GET", "/commandes/" .. math.random(1, rows), { ["Authorization"] = auth })
end
