dofile(os.getenv("BENCH_LUA") .. "/common.lua")
-- The same page by offset, for comparison.
local skip = tonumber(os.getenv("BENCH_SKIP") or "0")
request = function()
  return wrk.format("GET", "/commandes?limit=20&skip=" .. skip, { ["Authorization"] = auth })
end
