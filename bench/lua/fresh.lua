-- Shared by the write scenarios on fresh orders: bench/run.sh inserts
-- BENCH_FRESH_COUNT pending orders from id BENCH_FRESH_FROM before the run;
-- each request takes the next one (threads interleave), so every request
-- is a real change of its own order, never a repeat.
fresh_from = tonumber(os.getenv("BENCH_FRESH_FROM") or "1")
fresh_count = tonumber(os.getenv("BENCH_FRESH_COUNT") or "1")
threads = tonumber(os.getenv("BENCH_THREADS") or "2")
local taken = 0
function next_fresh()
  local id = fresh_from + (taken * threads + (thread_id or 1) - 1) % fresh_count
  taken = taken + 1
  return id
end
