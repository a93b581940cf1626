dofile(os.getenv("BENCH_LUA") .. "/common.lua")
request = function()
  return wrk.format("GET", "/commandes?status=pending&limit=20", { ["Authorization"] = auth })
end
