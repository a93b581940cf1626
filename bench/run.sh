#!/usr/bin/env bash
# The commandes benchmark: builds the release binary, loads a generated data
# set into PostgreSQL and SQLite, starts the service on each, and drives it
# with wrk at 32 connections; for PostgreSQL it also runs pgbench with the
# same SQL at the same concurrency, so the service's throughput is read as a
# share of what its database can do on this machine. Results go to
# bench/results/<date>.md and are printed.
#
# Usage: bench/run.sh [--large] [--rows N] [--duration SECONDS] [--rounds N]
#   --large       1,000,000 orders instead of 100,000
#   --duration    seconds per run (default 10)
#   --rounds      how many times each comparison alternates (default 2)
#   --backend     sqlite, postgres or both (default)
# Environment: BENCH_PG (server URL, default postgres://root@127.0.0.1:5432/test)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

ROWS=100000
DURATION=10
ROUNDS=2
ONLY=both
CONNECTIONS=32
THREADS=2
while [ $# -gt 0 ]; do
  case "$1" in
    --large) ROWS=1000000 ;;
    --rows) ROWS="$2"; shift ;;
    --duration) DURATION="$2"; shift ;;
    --rounds) ROUNDS="$2"; shift ;;
    --backend) ONLY="$2"; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
CUSTOMERS=10000
PG_SERVER="${BENCH_PG:-postgres://root@127.0.0.1:5432/test}"
TOKEN="bench-token-0123456789"  # at least 16 characters, as the service requires
export BENCH_TOKEN="$TOKEN" BENCH_ROWS="$ROWS" BENCH_CUSTOMERS="$CUSTOMERS" BENCH_LUA="$ROOT/bench/lua"

need() { command -v "$1" >/dev/null 2>&1; }
if ! need wrk || ! need pgbench || ! need psql; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk postgresql-client postgresql-contrib >/dev/null
fi

echo "== building the release binary"
# BENCH_BIN runs another build (an older one, to compare) on the same data.
if [ -n "${BENCH_BIN:-}" ]; then
  BIN="$BENCH_BIN"
else
  cargo build --release -q
  BIN="$ROOT/target/release/commandes"
fi

WORK="$(mktemp -d)"
DB="commandes_bench_$$"
PG_URL="$(python3 -c 'import sys,urllib.parse as u; p=u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/"+sys.argv[2])))' "$PG_SERVER" "$DB")"
SQLITE_URL="sqlite://$WORK/bench.db"
PID=""
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null || true
  psql "$PG_SERVER" -qc "drop database if exists $DB with (force)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# The data set: order ids GEN00000001…, customers CUST00001… with a skewed
# number of orders each, statuses derived from the id (10 % pending, 10 %
# processing, 65 % completed, 15 % cancelled: the scripts know each order's
# status from its id), amounts 5.00–2000.00 with a long tail, creation times
# over two years. Both backends get the same shape.
echo "== loading $ROWS orders"
psql "$PG_SERVER" -qc "create database $DB"
COMMANDES_DATABASE_URL="$PG_URL" "$BIN" migrate >/dev/null
psql "$PG_URL" -q <<SQL
begin;
-- As an import does: no counter update per row, one recount at the end.
set local commandes.bulk = 'on';
insert into commandes (id, order_id, customer_id, status, total_amount, created_at, updated_at)
select g,
       'GEN' || lpad(g::text, 8, '0'),
       'CUST' || lpad((1 + floor(power(random(), 3) * $CUSTOMERS))::int::text, 5, '0'),
       case when g % 20 < 2 then 'pending' when g % 20 < 4 then 'processing'
            when g % 20 < 17 then 'completed' else 'cancelled' end,
       round((5 + power(random(), 4) * 1995)::numeric, 2),
       t, t + (case when g % 20 < 2 then interval '0' else random() * interval '3 days' end)
from generate_series(1, $ROWS) g,
     lateral (select now() - random() * interval '730 days' - interval '3 days' as t) ts;
select setval(pg_get_serial_sequence('commandes', 'id'), $ROWS);
update commandes_stats s
set order_count = coalesce(a.n, 0), total_amount = coalesce(a.total, 0)
from commandes_stats k
left join (select status, (id % 16)::smallint as shard, count(*) as n, sum(total_amount) as total
           from commandes group by 1, 2) a on a.status = k.status and a.shard = k.shard
where s.status = k.status and s.shard = k.shard;
commit;
vacuum analyze commandes;
-- The load went through the counter trigger row by row; start from a
-- compact counter table, as autovacuum keeps it in steady state.
vacuum full commandes_stats;
SQL
COMMANDES_DATABASE_URL="$SQLITE_URL" "$BIN" migrate >/dev/null
python3 - "$WORK/bench.db" "$ROWS" "$CUSTOMERS" <<'PY'
import random, sqlite3, sys, datetime
path, rows, customers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
db = sqlite3.connect(path)
now = datetime.datetime.now(datetime.timezone.utc)
def fmt(t): return t.strftime('%Y-%m-%dT%H:%M:%S.%fZ')
def gen():
    r = random.Random(42)
    for g in range(1, rows + 1):
        m = g % 20
        status = 'pending' if m < 2 else 'processing' if m < 4 else 'completed' if m < 17 else 'cancelled'
        created = now - datetime.timedelta(days=3 + r.random() * 730)
        updated = created if m < 2 else created + datetime.timedelta(days=r.random() * 3)
        yield (g, f'GEN{g:08d}', f'CUST{1 + int(r.random() ** 3 * customers):05d}', status,
               500 + int(r.random() ** 4 * 199500), fmt(created), fmt(updated))
with db:
    db.executemany('insert into commandes (id, order_id, customer_id, status, total_cents, created_at, updated_at) values (?,?,?,?,?,?,?)', gen())
db.execute('analyze')
db.close()
PY

# pgbench scripts: the statements the service sends, as it sends them.
COLS="id, order_id, customer_id, status, total_amount, created_at, updated_at"
cat >"$WORK/select.sql" <<SQL
\set id random(1, $ROWS)
select $COLS from commandes where id = :id;
SQL
cat >"$WORK/insert.sql" <<SQL
\set c random(1, $CUSTOMERS)
\set a random(500, 199999)
insert into commandes (order_id, customer_id, status, total_amount, created_at, updated_at)
values ('PGB' || :client_id || '-' || (random() * 1e12)::bigint, 'CUST' || lpad(:c::text, 5, '0'), 'pending', :a / 100.0, now(), now())
on conflict (order_id) do nothing returning $COLS;
SQL

start_service() { # url
  # The deep-skip scenario measures what the skip cap (server.max_skip)
  # protects against, so the cap is lifted for it.
  COMMANDES_API_TOKENS="$TOKEN" COMMANDES_DATABASE_URL="$1" RUST_LOG=warn COMMANDES_POOL_SIZE=16 \
    COMMANDES_MAX_SKIP=$((DEEP + 100)) \
    "$BIN" --host 127.0.0.1 --port 8099 --no-demo-data >"$WORK/service.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 100); do curl -fs http://127.0.0.1:8099/health/ready >/dev/null 2>&1 && return; sleep 0.05; done
  echo "the service did not start" >&2; cat "$WORK/service.log" >&2; exit 1
}
stop_service() { kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""; }
peak_rss_mb() { awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$PID/status"; }

RESULTS="$WORK/results.tsv"
: >"$RESULTS"
# Runs wrk; appends: backend, scenario, req/s, p50, p99, non-2xx, peak RSS.
run_wrk() { # backend scenario script
  local out
  out=$(BENCH_RUN="$RANDOM$RANDOM" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency \
          -s "$ROOT/bench/lua/$3.lua" http://127.0.0.1:8099 2>&1)
  local rps p50 p99 bad
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  bad=$(awk '/Non-2xx/ {print $5}' <<<"$out"); bad=${bad:-0}
  local errs; errs=$(awk '/Socket errors/ {print}' <<<"$out")
  [ -n "$errs" ] && bad="$bad ($errs)"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$rps" "$p50" "$p99" "$bad" "$(peak_rss_mb)" | tee -a "$RESULTS"
}
run_pgbench() { # mode script label
  local out tps
  out=$(pgbench -n -M "$1" -c "$CONNECTIONS" -j "$THREADS" -T "$DURATION" -f "$WORK/$2" "$PG_URL" 2>&1)
  tps=$(awk '/^tps/ {print $3; exit}' <<<"$out")
  local lat; lat=$(awk '/latency average/ {print $4 "ms"}' <<<"$out")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "postgres" "$3" "$tps" "avg $lat" "" "0" "" | tee -a "$RESULTS"
}

SCENARIOS="get_root get_by_id get_by_order_id list_pending customer create set_status stats mixed keyset_deep skip_deep"
# The deep page: order 200,000 of the default sort (or the middle of a
# smaller set), reached once by offset to learn its cursor.
DEEP=$(( ROWS >= 400000 ? 200000 : ROWS / 2 ))
export BENCH_SKIP="$DEEP"
deep_cursor() {
  curl -s -D - -o /dev/null "http://127.0.0.1:8099/commandes?limit=20&skip=$((DEEP - 20))" -H "Authorization: Bearer $TOKEN" \
    | awk -F'cursor=' 'tolower($0) ~ /^link:/ {split($2, a, ">"); print a[1]}'
}
echo "== runs: $DURATION s each, $CONNECTIONS connections, rounds alternate"
printf 'backend\tscenario\treq/s\tp50\tp99\tnon-2xx\tpeak RSS MB\n'
for round in $(seq 1 "$ROUNDS"); do
  if [ "$ONLY" != sqlite ]; then
    # PostgreSQL itself, then the service on it, alternating.
    run_pgbench extended select.sql "pgbench -M extended: select by id"
    run_pgbench prepared select.sql "pgbench -M prepared: select by id"
    run_pgbench extended insert.sql "pgbench -M extended: insert"
    start_service "$PG_URL"
    export BENCH_CURSOR="$(deep_cursor)"
    for s in $SCENARIOS; do run_wrk postgres "$s" "$s"; done
    stop_service
  fi
  if [ "$ONLY" != postgres ]; then
    start_service "$SQLITE_URL"
    export BENCH_CURSOR="$(deep_cursor)"
    for s in $SCENARIOS; do run_wrk sqlite "$s" "$s"; done
    stop_service
  fi
done

mkdir -p bench/results
REPORT="bench/results/$(date -u +%Y%m%dT%H%M%SZ)-${ROWS}.tsv"
{
  echo "# $(date -u +%FT%TZ) rows=$ROWS duration=${DURATION}s connections=$CONNECTIONS rounds=$ROUNDS $(nproc) cores"
  printf 'backend\tscenario\treq/s\tp50\tp99\tnon-2xx\tpeak RSS MB\n'
  cat "$RESULTS"
} >"$REPORT"
echo "== written to $REPORT"
