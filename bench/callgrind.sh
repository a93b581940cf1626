#!/usr/bin/env bash
# Instructions per request, counted by valgrind's callgrind: a comparison of
# two builds that does not depend on what else the machine is doing (wrk's
# figures do; see bench/run.sh). Each binary serves the same SQLite data set
# under callgrind; a fixed sequence of requests per scenario is sent over one
# keep-alive connection, counting only while it runs.
#
# Usage: bench/callgrind.sh BINARY [BINARY…]   (release builds, to compare)
# Environment: BENCH_ROWS (default 10000), BENCH_REQUESTS per scenario (200).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: $0 BINARY [BINARY…]" >&2; exit 2; }
command -v valgrind >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null; }
ROWS="${BENCH_ROWS:-10000}"
N="${BENCH_REQUESTS:-200}"
TOKEN="bench-token-0123456789"
PORT=8097
WORK="$(mktemp -d)"
PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; [ -n "${BENCH_KEEP:-}" ] || rm -rf "$WORK"; }
trap cleanup EXIT

# One data set for every binary: the first one creates the schema.
(cd "$WORK" && COMMANDES_DATABASE_URL="sqlite://$WORK/seed.db" COMMANDES_DEMO_DATA=never "$1" migrate >/dev/null)
python3 - "$WORK/seed.db" "$ROWS" <<'PY'
import random, sqlite3, sys, datetime
path, rows = sys.argv[1], int(sys.argv[2])
db = sqlite3.connect(path)
now = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)
fmt = lambda t: t.strftime('%Y-%m-%dT%H:%M:%S.%fZ')
r = random.Random(42)
def gen():
    for g in range(1, rows + 1):
        m = g % 20
        status = 'pending' if m < 4 else 'completed' if m < 17 else 'cancelled'
        t = now - datetime.timedelta(days=3 + r.random() * 730)
        yield (g, f'GEN{g:08d}', f'CUST{1 + int(r.random() ** 3 * 1000):05d}', status,
               500 + int(r.random() ** 4 * 199500), fmt(t), fmt(t))
with db:
    db.executemany('insert into commandes (id, order_id, customer_id, status, total_cents, created_at, updated_at) values (?,?,?,?,?,?,?)', gen())
db.execute('analyze')
db.close()
PY

printf 'binary\tscenario\tinstructions per request\n'
for BIN in "$@"; do
  cp "$WORK/seed.db" "$WORK/run.db"
  rm -f "$WORK"/callgrind.out*
  # In the work folder, so that no config.toml of this checkout applies
  # (an older binary may not know its sections).
  (cd "$WORK" && COMMANDES_API_TOKENS="$TOKEN" COMMANDES_DATABASE_URL="sqlite://$WORK/run.db" \
    RUST_LOG=warn COMMANDES_DEMO_DATA=never exec \
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$WORK/callgrind.out" \
    "$BIN" --host 127.0.0.1 --port "$PORT" >"$WORK/service.log" 2>&1) &
  PID=$!
  ready=""
  for _ in $(seq 1 600); do curl -fs "http://127.0.0.1:$PORT/health/ready" >/dev/null 2>&1 && { ready=1; break; }; sleep 0.5; done
  [ -n "$ready" ] || { echo "$BIN did not start:" >&2; tail -20 "$WORK/service.log" >&2; exit 1; }
  python3 - "$PORT" "$TOKEN" "$N" "$ROWS" "$PID" "$BIN" <<'PY'
import http.client, json, subprocess, sys, glob, os
port, token, n, rows, pid, binary = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]
c = http.client.HTTPConnection('127.0.0.1', port)
h = {'Authorization': 'Bearer ' + token, 'Content-Type': 'application/json'}
def req(method, path, body=None):
    c.request(method, path, body=json.dumps(body) if body is not None else None, headers=h)
    r = c.getresponse(); data = r.read()
    assert r.status < 500, (method, path, r.status, data)
    return r.status, data
created = []
def create(i):
    _, d = req('POST', '/commandes', {'order_id': f'CG-{i}', 'customer_id': 'CUST00001', 'total_amount': '12.34'})
    created.append(json.loads(d)['id'])
scenarios = [
    ('get_by_id', lambda i: req('GET', f'/commandes/{1 + (i * 7919) % rows}')),
    ('list_pending', lambda i: req('GET', '/commandes?status=pending&limit=20')),
    ('customer', lambda i: req('GET', f'/commandes/customer/CUST{1 + i % 50:05d}?limit=20')),
    ('stats', lambda i: req('GET', '/stats')),
    ('create', create),
    ('set_status', lambda i: req('PUT', f'/commandes/{created[i]}/status', {'status': 'processing'})),
]
def ctl(*args):
    subprocess.run(['callgrind_control', *args, pid], check=True, stdout=subprocess.DEVNULL)
for name, f in scenarios:
    f(0) if name not in ('create', 'set_status') else None  # warm
    ctl('-i', 'on'); ctl('-z')
    for i in range(n):
        f(i)
    ctl('-i', 'off'); ctl('-d', name)
PY
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
  for f in "$WORK"/callgrind.out.*; do
    [ -f "$f" ] || continue
    scen=$(awk '/^desc: Trigger: dump / {print $4}' "$f")
    tot=$(awk '/^totals:/ {print $2}' "$f")
    [ -n "$scen" ] && [ -n "$tot" ] && printf '%s\t%s\t%s\n' "$(basename "$BIN")" "$scen" "$((tot / N))"
  done | sort -k2
done
