#!/usr/bin/env bash
# How long writers wait while a backup of a big SQLite file is taken
# (issue #16; the figures are in BENCHMARKS.md). Generates ROWS orders
# (default 1,000,000) into a file once, kept for the next runs, then runs
# examples/backup_wait on it: WRITERS tasks (default 4) create orders
# without pause through the library's store while backups are taken by
# each method, and the waits of the writes in flight are printed as a
# Markdown table. Each run adds the orders its writers create.
#
# Usage: bench/backup.sh [ROWS] [WRITERS]
# Environment: BENCH_DIR (default target/bench-backup), where the file is.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS="${1:-1000000}"
WRITERS="${2:-4}"
DIR="${BENCH_DIR:-target/bench-backup}"
DB="$DIR/orders-$ROWS.db"
mkdir -p "$DIR"

cargo build --release --bin commandes --example backup_wait
if [ ! -f "$DB" ]; then
  target/release/commandes generate --count "$ROWS" --seed 7 --to "sqlite://$DB"
fi
target/release/examples/backup_wait "$DB" "$WRITERS"
