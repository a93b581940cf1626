#!/usr/bin/env bash
# Import and export at scale: builds the release binary, generates
# 1,000,000 orders, imports them into an empty PostgreSQL database and into
# a fresh SQLite file, exports both back (and checks the bytes), then the
# pipe `generate | import -` and a `copy` SQLite → PostgreSQL. Each step is
# timed with /usr/bin/time -v (wall clock and peak RSS of the commandes
# process) and the figures are printed as a table.
#
#   bench/transfer.sh                      # 1,000,000 orders
#   COUNT=100000 bench/transfer.sh         # a quicker run
#   BENCH_DATABASE_URL=postgres://user@host:5432/postgres bench/transfer.sh
#
# BENCH_DATABASE_URL names a PostgreSQL server (any database on it); a
# database commandes_bench_<pid> is created there and dropped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

COUNT="${COUNT:-1000000}"
SEED="${SEED:-42}"
SERVER="${BENCH_DATABASE_URL:-postgres://root@127.0.0.1:5432/test}"

if [ ! -x /usr/bin/time ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null
fi

echo "== cargo build --release" >&2
cargo build --release --locked -q
BIN="$PWD/target/release/commandes"

WORK="$(mktemp -d)"
BASE="${SERVER%%\?*}"
BASE="${BASE%/*}"
DB1="commandes_bench_$$"
DB2="commandes_bench_$$_pipe"
DB3="commandes_bench_$$_copy"
cleanup() {
  for db in "$DB1" "$DB2" "$DB3"; do
    psql "$SERVER" -qc "drop database if exists $db with (force)" >/dev/null 2>&1 || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
for db in "$DB1" "$DB2" "$DB3"; do
  psql "$SERVER" -qc "create database $db" >/dev/null
done
PG1="$BASE/$DB1"
PG2="$BASE/$DB2"
PG3="$BASE/$DB3"
export COMMANDES_LOG_FORMAT=text

ROWS=()
# measure NAME TARGET COMMAND...: runs COMMAND under /usr/bin/time -v.
measure() {
  local name="$1" target="$2"
  shift 2
  echo "== $name: $*" >&2
  /usr/bin/time -v -o "$WORK/time.txt" "$@" >"$WORK/out.txt" 2>"$WORK/err.txt" || {
    cat "$WORK/err.txt" >&2
    echo "step failed: $name" >&2
    exit 1
  }
  local wall rss secs
  wall="$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$WORK/time.txt")"
  rss="$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/time.txt")"
  secs="$(echo "$wall" | awk -F: '{ if (NF == 3) print $1*3600 + $2*60 + $3; else print $1*60 + $2 }')"
  ROWS+=("$(printf '| %-34s | %8.2f | %9d | %7.1f | %-9s |' "$name" "$secs" \
    "$(awk -v n="$COUNT" -v s="$secs" 'BEGIN { printf "%d", (s > 0 ? n / s : 0) }')" \
    "$(awk -v k="$rss" 'BEGIN { printf "%.1f", k / 1024 }')" "$target")")
}

cd "$WORK"
measure "generate to a CSV file" "" "$BIN" generate --count "$COUNT" --seed "$SEED" -o orders.csv
ls -l orders.csv >&2
measure "import CSV into PostgreSQL" "< 15 s" "$BIN" --database-url "$PG1" import orders.csv --no-progress
measure "export PostgreSQL to CSV" "< 5 s" "$BIN" --database-url "$PG1" export -o pg.csv --no-progress
measure "import CSV into SQLite" "< 10 s" "$BIN" --database-url "sqlite://$WORK/bench.db" import orders.csv --no-progress
measure "export SQLite to CSV" "< 5 s" "$BIN" --database-url "sqlite://$WORK/bench.db" export -o sqlite.csv --no-progress
measure "generate piped to import, PostgreSQL" "" sh -c "'$BIN' generate --count $COUNT --seed $SEED | '$BIN' --database-url '$PG2' import - --no-progress"
measure "generate piped to import, SQLite" "" sh -c "'$BIN' generate --count $COUNT --seed $SEED | '$BIN' --database-url 'sqlite://$WORK/pipe.db' import - --no-progress"
measure "copy SQLite to PostgreSQL, verified" "" "$BIN" copy --from "sqlite://$WORK/bench.db" --to "$PG3" --no-progress
grep -q "verified: identical" "$WORK/out.txt"

cmp orders.csv pg.csv
cmp orders.csv sqlite.csv
echo "== exports are byte-identical to the generated file" >&2

echo
echo "$COUNT orders, seed $SEED; $(nproc) cores; $(psql "$SERVER" -qAtc 'show server_version' | sed 's/^/PostgreSQL /'); load average at the end (1, 5, 15 min): $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| step                               |        s |    rows/s | peak MB | target    |"
echo "| ---------------------------------- | -------: | --------: | ------: | --------- |"
printf '%s\n' "${ROWS[@]}"
