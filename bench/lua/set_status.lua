dofile(os.getenv("BENCH_LUA") .. "/common.lua")
-- Sets a generated order's status to the one it has: a legal no-op that
-- still runs the whole change path (transaction, row lock, rule check).
init = function() seed() end
request = function()
  local id = math.random(1, rows)
  return wrk.format("PUT", "/commandes/" .. id .. "/status",
    { ["Authorization"] = auth, ["Content-Type"] = "application/json" }, '"' .. status_of(id) .. '"')
end
