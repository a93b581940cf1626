dofile(os.getenv("BENCH_LUA") .. "/common.lua")
init = function() seed() end
request = function()
  return wrk.format("GET", string.format("/commandes/customer/CUST%05d", math.random(1, customers)), { ["Authorization"] = auth })
end
