-- Shared by the scenarios: the token and the data set size come from the
-- environment that bench/run.sh sets.
token = os.getenv("BENCH_TOKEN") or "bench-token-0123456789"
rows = tonumber(os.getenv("BENCH_ROWS") or "100000")
customers = tonumber(os.getenv("BENCH_CUSTOMERS") or "10000")
auth = "Bearer " .. token

local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("thread_id", counter)
end

function seed()
  math.randomseed(os.time() + (thread_id or 0) * 7919)
end

-- The status bench/run.sh gave generated order `id`.
function status_of(id)
  local m = id % 20
  if m < 2 then return "pending" elseif m < 4 then return "processing"
  elseif m < 17 then return "completed" else return "cancelled" end
end
