dofile(os.getenv("BENCH_LUA") .. "/common.lua")
-- Page 10,000 of 20 (order 200,000 and after) by its cursor, which
-- bench/run.sh takes from a Link header.
local cursor = os.getenv("BENCH_CURSOR") or ""
request = function()
  return wrk.format("GET", "/commandes?limit=20&cursor=" .. cursor, { ["Authorization"] = auth })
end
