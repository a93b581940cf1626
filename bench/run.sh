#!/usr/bin/env bash
# The commandes benchmark: builds the release binary, loads a generated data
# set into PostgreSQL and SQLite, starts the service on each, and drives it
# with wrk at 32 connections; for PostgreSQL it also runs pgbench with the
# same SQL at the same concurrency, so the service's throughput is read as a
# share of what its database can do on this machine. Results go to
# bench/results/<date>.md and are printed.
#
# Usage: bench/run.sh [--large|--huge] [--rows N] [--duration SECONDS] [--rounds N]
#   --large       1,000,000 orders instead of 100,000
#   --huge        10,000,000 orders, loaded by `commandes generate --to` (timed,
#                 with its peak RSS and the database's size), read scenarios only
#   --generate    load with `commandes generate --to` (as --huge does), timed
#   --reads       the read scenarios only (lookups, lists, keyset page, /stats)
#   --sustained S after the runs, S seconds of writes (creates and changes) on
#                 PostgreSQL, then /stats and the writes again (600 for the
#                 "after 10 minutes" figures), with the dead rows left
#   --duration    seconds per run (default 10)
#   --rounds      how many times each comparison alternates (default 2)
#   --backend     sqlite, postgres or both (default)
# Environment: BENCH_PG (a server URL to use instead of the script's own
# cluster). By default the script starts a PostgreSQL cluster of its own
# (initdb, as production runs it: autovacuum on, fsync on), and removes it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

ROWS=100000
DURATION=10
ROUNDS=2
ONLY=both
CONNECTIONS=32
THREADS=2
GENERATE=0
READS_ONLY=0
SUSTAINED=0
while [ $# -gt 0 ]; do
  case "$1" in
    --large) ROWS=1000000 ;;
    --huge) ROWS=10000000; GENERATE=1; READS_ONLY=1 ;;
    --generate) GENERATE=1 ;;
    --reads) READS_ONLY=1 ;;
    --sustained) SUSTAINED="$2"; shift ;;
    --rows) ROWS="$2"; shift ;;
    --duration) DURATION="$2"; shift ;;
    --rounds) ROUNDS="$2"; shift ;;
    --backend) ONLY="$2"; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
CUSTOMERS=10000
TOKEN="bench-token-0123456789"  # at least 16 characters, as the service requires
export BENCH_TOKEN="$TOKEN" BENCH_ROWS="$ROWS" BENCH_CUSTOMERS="$CUSTOMERS" BENCH_LUA="$ROOT/bench/lua"
export BENCH_THREADS="$THREADS"

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
chmod 755 "$WORK"
DB="commandes_bench_$$"
PID=""
OWN_PG=""
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null || true
  if [ -n "$OWN_PG" ]; then
    as_postgres pg_ctl -D "$OWN_PG" -m fast stop >/dev/null 2>&1 || true
  else
    psql "$PG_SERVER" -qc "drop database if exists $DB with (force)" >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
if [ -n "${BENCH_PG:-}" ]; then
  PG_SERVER="$BENCH_PG"
  if [ "$(psql "$PG_SERVER" -Atc 'show autovacuum')" != on ]; then
    echo "warning: autovacuum is off on $PG_SERVER (production has it on); the write figures will not say what production sees" >&2
  fi
elif [ "$ONLY" != sqlite ]; then
  # A cluster of our own, with PostgreSQL's defaults (autovacuum on), as
  # production runs: the shared test server turns autovacuum off.
  PGBIN="$(pg_config --bindir 2>/dev/null || true)"; [ -x "$PGBIN/initdb" ] || PGBIN="$(dirname "$(command -v initdb)")"
  # The server runs as postgres (when we are root): its data and socket
  # directories must be its own.
  OWN_PG="$WORK/pg"; mkdir -p "$OWN_PG" "$WORK/sock"; chown postgres "$OWN_PG" "$WORK/sock" 2>/dev/null || true
  as_postgres "$PGBIN/initdb" -D "$OWN_PG" -U postgres --auth=trust -E UTF8 >/dev/null
  PG_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  cat >>"$OWN_PG/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$WORK/sock'
max_connections = 200
shared_buffers = 256MB
autovacuum = on
CONF
  as_postgres "$PGBIN/pg_ctl" -D "$OWN_PG" -l "$OWN_PG/server.log" -w start >/dev/null
  PG_SERVER="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
fi
PG_URL="$(python3 -c 'import sys,urllib.parse as u; p=u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/"+sys.argv[2])))' "${PG_SERVER:-postgres://h/x}" "$DB")"
SQLITE_URL="sqlite://$WORK/bench.db"
echo "== machine: $(nproc) cores, load: $(uptime | sed 's/.*load average: //')"

# The data set: order ids GEN00000001…, customers CUST00001… with a skewed
# number of orders each, statuses derived from the id (10 % pending, 10 %
# processing, 65 % completed, 15 % cancelled: the scripts know each order's
# status from its id), amounts 5.00–2000.00 with a long tail, creation times
# over two years. Both backends get the same shape.
# The counters of /stats and the per-day figures, set from the table as an
# import sets them (src/storage/postgres/bulk.rs): the loads below insert
# with `commandes.bulk` on, as an import does, because the triggers' one
# update per row in one transaction would leave each counter row with as
# many dead versions as rows inserted.
RECOUNT="delete from commandes_daily;
insert into commandes_daily (day, status, shard, order_count, total_amount)
select (created_at at time zone 'UTC')::date, status, (id % 16)::smallint, count(*), sum(total_amount)
from commandes group by 1, 2, 3;
update commandes_stats s
set order_count = coalesce(a.n, 0), total_amount = coalesce(a.total, 0)
from commandes_stats k
left join (select status, (id % 16)::smallint as shard, count(*) as n, sum(total_amount) as total
           from commandes group by 1, 2) a on a.status = k.status and a.shard = k.shard
where s.status = k.status and s.shard = k.shard;"
echo "== loading $ROWS orders"
LOAD_NOTES="$WORK/load.tsv"; : >"$LOAD_NOTES"
# `commandes generate --to`: the import path, timed, with its peak RSS.
generate_into() { # label url
  local t0 t1 rss
  t0=$(date +%s.%N)
  /usr/bin/time -f '%M' -o "$WORK/time.txt" "$BIN" generate --count "$ROWS" --seed 7 --to "$2" >/dev/null
  t1=$(date +%s.%N)
  rss=$(awk '{printf "%.1f", $1 / 1024}' "$WORK/time.txt")
  printf '%s\timport %s orders\t%.1f s\tpeak RSS %s MB\n' "$1" "$ROWS" "$(echo "$t1 - $t0" | bc)" "$rss" | tee -a "$LOAD_NOTES"
}
if [ "$ONLY" != sqlite ]; then
psql "$PG_SERVER" -qc "create database $DB"
COMMANDES_DATABASE_URL="$PG_URL" "$BIN" migrate >/dev/null
fi
if [ "$GENERATE" = 1 ]; then
  [ "$ONLY" != sqlite ] && generate_into postgres "$PG_URL" && psql "$PG_URL" -qc "vacuum analyze commandes"
  [ "$ONLY" != postgres ] && generate_into sqlite "$SQLITE_URL"
else
if [ "$ONLY" != sqlite ]; then
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
$RECOUNT
commit;
vacuum analyze commandes;
SQL
fi
if [ "$ONLY" != postgres ]; then
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
fi
fi
if [ "$ONLY" != sqlite ]; then
  printf 'postgres\tdatabase size\t%s\n' "$(psql "$PG_URL" -Atc "select pg_size_pretty(pg_database_size(current_database()))")" | tee -a "$LOAD_NOTES"
fi
if [ "$ONLY" != postgres ]; then
  printf 'sqlite\tdatabase size\t%s MB\n' "$(du -m "$WORK"/bench.db* | awk '{s += $1} END {print s}')" | tee -a "$LOAD_NOTES"
fi

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

# The writes as the service sends them (see src/storage/postgres/queries.rs
# and changes.rs): each in its own implicit transaction, the order, its
# event and (by the trigger) its counters in one statement; a change reads
# the order first and writes only the row it read. Fresh orders come from a
# sequence that run_fresh sets, one order per change.
EVENT_DATA='{"id": 0, "order": {"id": 0, "order_id": "x", "customer_id": "CUST00001", "status": "pending", "total_amount": "12.50", "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"}, "actor": {"kind": "token"}}'
cat >"$WORK/create_event.sql" <<SQL
\set c random(1, $CUSTOMERS)
\set a random(500, 199999)
with o as (insert into commandes (order_id, customer_id, status, total_amount, created_at, updated_at)
           values ('PGB' || :client_id || '-' || (random() * 1e12)::bigint, 'CUST' || lpad(:c::text, 5, '0'), 'pending', :a / 100.0, now(), now())
           on conflict (order_id) do nothing returning $COLS),
     e as (insert into commandes_events (event_id, type, time, order_ref, order_id, customer_id, data)
           select gen_random_uuid(), 'order.created', now(), o.id, o.order_id, o.customer_id,
                  jsonb_set('$EVENT_DATA'::jsonb, '{id}', to_jsonb(o.id)) from o)
select $COLS from o;
SQL
changed_event() { # type
  echo "insert into commandes_events (event_id, type, time, order_ref, order_id, customer_id, data)
  select gen_random_uuid(), '$1', now(), changed.id, changed.order_id, changed.customer_id, '$EVENT_DATA'::jsonb from changed"
}
# Under -M prepared the variables are bound parameters: no quoting.
UNCHANGED="id = :id and order_id = :order_id and customer_id = :customer_id and status = :status
  and total_amount = :total_amount and updated_at = :updated_at"
cat >"$WORK/transition_event.sql" <<SQL
select $COLS from commandes where id = (select nextval('bench_fresh')) \gset
with changed as (update commandes set status = 'processing', updated_at = now()
                 where $UNCHANGED returning id, order_id, customer_id),
     inserted as ($(changed_event order.status_changed))
select count(*) from changed;
SQL
cat >"$WORK/delete_event.sql" <<SQL
select $COLS from commandes where id = (select nextval('bench_fresh')) \gset
with changed as (delete from commandes where $UNCHANGED returning id, order_id, customer_id),
     inserted as ($(changed_event order.deleted))
select count(*) from changed;
SQL

# Inserts the fresh pending orders a transition or delete run takes, one
# each; sets BENCH_FRESH_FROM/COUNT (and PostgreSQL's bench_fresh sequence).
FRESH=$(( DURATION * 8000 + 20000 ))
fresh_orders() { # backend
  local from
  if [ "$1" = postgres ]; then
    from=$(psql "$PG_URL" -Atq <<SQL
select coalesce(max(id), 0) + 1 from commandes;
SQL
)
    psql "$PG_URL" -q <<SQL
begin;
set local commandes.bulk = 'on';
insert into commandes (id, order_id, customer_id, status, total_amount, created_at, updated_at)
select g, 'FRESH' || g, 'CUST00001', 'pending', 10.00, now(), now() from generate_series($from, $from + $FRESH - 1) g;
$RECOUNT
commit;
select setval(pg_get_serial_sequence('commandes', 'id'), $from + $FRESH);
create sequence if not exists bench_fresh;
select setval('bench_fresh', $from, false);
SQL
  else
    from=$(python3 - "$WORK/bench.db" "$FRESH" <<'PY'
import sqlite3, sys, datetime
db = sqlite3.connect(sys.argv[1], timeout=30)
start = (db.execute('select coalesce(max(id), 0) + 1 from commandes').fetchone()[0])
now = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%fZ')
with db:
    db.executemany('insert into commandes (id, order_id, customer_id, status, total_cents, created_at, updated_at) values (?,?,?,?,?,?,?)',
                   ((g, f'FRESH{g}', 'CUST00001', 'pending', 1000, now, now) for g in range(start, start + int(sys.argv[2]))))
print(start)
PY
)
  fi
  export BENCH_FRESH_FROM="$from" BENCH_FRESH_COUNT="$FRESH"
}

start_service() { # url
  # The deep-skip scenario measures what the skip cap (server.max_skip)
  # protects against, so the cap is lifted for it.
  COMMANDES_API_TOKENS="$TOKEN" COMMANDES_DATABASE_URL="$1" RUST_LOG=warn COMMANDES_POOL_SIZE=16 \
    COMMANDES_DATABASE_STATEMENT_CACHE="${STATEMENT_CACHE:-auto}" \
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

SCENARIOS="get_root get_by_id get_by_order_id list_pending customer create set_status transition delete_fresh stats mixed keyset_deep skip_deep"
[ "$READS_ONLY" = 1 ] && SCENARIOS="get_root get_by_id list_pending keyset_deep stats"
# A scenario on fresh orders gets its own batch first.
# What PostgreSQL's backends wait on during a run: 20 samples of
# pg_stat_activity, counted by wait event (none: running or idle in the client).
sample_waits() { # label
  for _ in $(seq 1 20); do
    sleep "$(echo "$DURATION / 22" | bc -l)"
    psql "$PG_URL" -Atc "select coalesce(wait_event_type || ':' || wait_event, state) from pg_stat_activity
                         where datname = current_database() and pid <> pg_backend_pid()"
  done | sort | uniq -c | sort -rn | head -6 | awk -v l="$1" '{printf "%s\twaits\t%s %s\n", "postgres", l, $0}' >>"$LOAD_NOTES"
}
run_scenario() { # backend scenario [label]
  case "$2" in transition|delete_fresh) fresh_orders "$1" ;; esac
  local sampler=""
  if [ "$1" = postgres ] && [ "$2" != get_root ]; then sample_waits "${3:-$2}" & sampler=$!; fi
  run_wrk "$1" "${3:-$2}" "$2"
  [ -n "$sampler" ] && wait "$sampler"
  return 0
}
run_pgbench_fresh() { # script label
  fresh_orders postgres
  run_pgbench prepared "$1" "$2"
}
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
    if [ "$READS_ONLY" = 0 ]; then
      run_pgbench extended insert.sql "pgbench -M extended: insert"
      run_pgbench prepared create_event.sql "pgbench -M prepared: create (order + event)"
      run_pgbench_fresh transition_event.sql "pgbench -M prepared: transition (read + change + event)"
      run_pgbench_fresh delete_event.sql "pgbench -M prepared: delete (read + delete + event)"
    fi
    start_service "$PG_URL"
    export BENCH_CURSOR="$(deep_cursor)"
    for s in $SCENARIOS; do run_scenario postgres "$s"; done
    stop_service
    # Unnamed statements (what a transaction pooler gets), against -M extended.
    STATEMENT_CACHE=off start_service "$PG_URL"
    run_wrk postgres "get_by_id (statement_cache=off)" get_by_id
    stop_service
  fi
  if [ "$ONLY" != postgres ]; then
    start_service "$SQLITE_URL"
    export BENCH_CURSOR="$(deep_cursor)"
    for s in $SCENARIOS; do run_scenario sqlite "$s"; done
    stop_service
  fi
done

if [ "$SUSTAINED" -gt 0 ] && [ "$ONLY" != sqlite ]; then
  echo "== $SUSTAINED s of sustained writes on PostgreSQL, then /stats and the writes again"
  dead() { psql "$PG_URL" -Atc "select string_agg(relname || ' ' || n_dead_tup || ' dead', ', ' order by relname) from pg_stat_user_tables where relname in ('commandes', 'commandes_stats', 'commandes_events')"; }
  printf 'postgres\tdead rows before\t%s\n' "$(dead)" | tee -a "$LOAD_NOTES"
  start_service "$PG_URL"
  for s in stats create transition; do run_scenario postgres "$s"; done
  BENCH_RUN="$RANDOM$RANDOM" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${SUSTAINED}s" -s "$ROOT/bench/lua/writes.lua" http://127.0.0.1:8099 \
    | awk '/Requests\/sec|Non-2xx/ {print "sustained writes: " $0}' | tee -a "$LOAD_NOTES"
  printf 'postgres\tdead rows after %s s\t%s\n' "$SUSTAINED" "$(dead)" | tee -a "$LOAD_NOTES"
  for s in stats create transition; do run_scenario postgres "$s" "$s (after ${SUSTAINED} s of writes)"; done
  stop_service
fi

mkdir -p bench/results
REPORT="bench/results/$(date -u +%Y%m%dT%H%M%SZ)-${ROWS}.tsv"
{
  echo "# $(date -u +%FT%TZ) rows=$ROWS duration=${DURATION}s connections=$CONNECTIONS rounds=$ROUNDS $(nproc) cores, load $(uptime | sed 's/.*load average: //')"
  echo "# PostgreSQL: ${OWN_PG:+own cluster (initdb), autovacuum on}${BENCH_PG:+$BENCH_PG}"
  cat "$LOAD_NOTES"
  printf 'backend\tscenario\treq/s\tp50\tp99\tnon-2xx\tpeak RSS MB\n'
  cat "$RESULTS"
} >"$REPORT"
echo "== written to $REPORT"
