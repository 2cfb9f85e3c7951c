#!/usr/bin/env bash
# outbox_bench.sh BUILD_DIR -- the outbox relay's figures (issue 22,
# docs/outbox.md), printed as a Markdown section on stdout;
# scripts/bench.sh appends it to bench/RESULTS.md. Needs PostgreSQL's
# server binaries (Debian `postgresql`), redis-server, curl, jq.
#
# Its own servers, in a temp dir: redis-server (AOF everysec, unix socket)
# and PostgreSQL (initdb + postgres on a unix socket, no TCP; as the
# `postgres` user when run as root; fsync on, as in production). One
# `saga worker` (concurrency 1000, --metrics for its counters) serves the
# one-step saga `outbox_bench`; `saga relay` (default batch of 100, and
# 1000) delivers the outbox.
#
#   1. Throughput: ROWS rows committed in one transaction while the relay
#      and the worker wait; rows relayed per second (commit to the last
#      delivered_at, PostgreSQL's clock) and sagas finished per second
#      (commit to the worker's saga_worker_sagas_finished_total reaching
#      ROWS, polled every 50 ms).
#   2. NOTIFY to saga at idle: LAT single-row transactions, 200 ms apart;
#      for each, the saga's `created` time (when the worker created its
#      record, the engine's clock) minus the row's created_at taken with
#      clock_timestamp() in the inserting transaction; and the row's
#      delivered_at minus the same. Both clocks are this host's.
set -euo pipefail
BUILD=${1:?usage: outbox_bench.sh BUILD_DIR}
SAGA=$BUILD/bin/saga
ROWS=${SAGA_OUTBOX_BENCH_ROWS:-20000}
LAT=${SAGA_OUTBOX_BENCH_LATENCY_RUNS:-50}
TMP=$(mktemp -d /tmp/saga-outbox-bench.XXXXXX)
chmod 755 "$TMP"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ -n "${SAGA_BENCH_KEEP:-}" ] || rm -rf "$TMP"
}
trap cleanup EXIT

PGBIN=$(pg_config --bindir 2>/dev/null || true)
[ -x "$PGBIN/initdb" ] || PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
[ -x "$PGBIN/initdb" ] || { echo "outbox_bench: no initdb (install postgresql)" >&2; exit 1; }
as_pg=()
if [ "$(id -u)" = 0 ]; then
    as_pg=(runuser -u postgres --)
    chown postgres: "$TMP"
fi

# ---- servers ----
mkdir -p "$TMP/redis" "$TMP/defs"
redis-server --port 0 --unixsocket "$TMP/redis/sock" --dir "$TMP/redis" \
    --appendonly yes --appendfsync everysec --save '' --daemonize yes \
    --pidfile "$TMP/redis/pid" --logfile "$TMP/redis/log" >/dev/null
for _ in $(seq 100); do redis-cli -s "$TMP/redis/sock" ping >/dev/null 2>&1 && break; sleep 0.05; done
REDIS=unix://$TMP/redis/sock

"${as_pg[@]}" "$PGBIN/initdb" -D "$TMP/pg" -U postgres -A trust -E UTF8 --locale=C \
    >"$TMP/initdb.log" 2>&1
"${as_pg[@]}" "$PGBIN/postgres" -D "$TMP/pg" -k "$TMP" -c listen_addresses= \
    >"$TMP/postgres.log" 2>&1 &
PIDS+=($!)
PG="host=$TMP port=5432 dbname=postgres user=postgres"
for _ in $(seq 200); do "$PGBIN/pg_isready" -q -h "$TMP" -p 5432 && break; sleep 0.05; done
psql() { PGOPTIONS="-c client_min_messages=warning" "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 "$PG" "$@"; }
"$SAGA" relay --schema | psql >/dev/null
PG_VERSION=$("$PGBIN/postgres" --version | awk '{print $3}')

cat >"$TMP/defs/outbox_bench.yaml" <<'EOF'
saga: outbox_bench
input:
  required: [n]
steps:
  - name: one
    action: {handler: demo.noop}
    compensation: {handler: demo.noop}
EOF
"$SAGA" worker --redis "$REDIS" --defs "$TMP/defs" --name bench-w --concurrency 1000 \
    --metrics 127.0.0.1:0 >"$TMP/worker.out" 2>"$TMP/worker.log" &
PIDS+=($!)
for _ in $(seq 200); do
    METRICS=$(head -n1 "$TMP/worker.out" 2>/dev/null || true)
    [ -n "$METRICS" ] && grep -q "running" "$TMP/worker.log" && break
    sleep 0.05
done
finished() {
    curl -s "$METRICS/metrics" | awk '/^saga_worker_sagas_finished_total/ {s += $2} END {printf "%d", s}'
}
now() { date +%s.%N; }

relay_start() { # batch
    "$SAGA" relay --postgres "$PG" --redis "$REDIS" --batch "$1" >"$TMP/relay-$1.log" 2>&1 &
    RELAY=$!
    PIDS+=("$RELAY")
    for _ in $(seq 200); do grep -q "connected to PostgreSQL" "$TMP/relay-$1.log" && return; sleep 0.05; done
    echo "outbox_bench: the relay did not connect" >&2; cat "$TMP/relay-$1.log" >&2; exit 1
}
relay_stop() { kill -TERM "$RELAY"; wait "$RELAY" 2>/dev/null || true; }

# ---- 1. throughput ----
# throughput TAG BATCH -> "rows/s sagas/s"
throughput() {
    local tag=$1 batch=$2 base t0 t_done delivered_at
    relay_start "$batch"
    base=$(finished)
    psql -c "INSERT INTO saga_outbox (id, saga, input) SELECT '$tag-' || i, 'outbox_bench',
             jsonb_build_object('n', i) FROM generate_series(1, $ROWS) AS i"
    t0=$(now)
    while [ "$(psql -Atc "SELECT count(*) FROM saga_outbox WHERE id LIKE '$tag-%'
                          AND delivered_at IS NOT NULL")" != "$ROWS" ]; do
        sleep 0.05
    done
    while [ $(($(finished) - base)) -lt "$ROWS" ]; do sleep 0.05; done
    t_done=$(now)
    delivered_at=$(psql -Atc "SELECT extract(epoch FROM max(delivered_at)) FROM saga_outbox
                              WHERE id LIKE '$tag-%'")
    relay_stop
    awk -v n="$ROWS" -v t0="$t0" -v d="$delivered_at" -v e="$t_done" \
        'BEGIN {printf "%.0f %.0f %.2f %.2f\n", n / (d - t0), n / (e - t0), d - t0, e - t0}'
}
read -r T100_ROWS T100_SAGAS T100_DS T100_ES < <(throughput b100 100)
read -r T1000_ROWS T1000_SAGAS T1000_DS T1000_ES < <(throughput b1000 1000)

# ---- 2. NOTIFY to saga at idle ----
relay_start 100
: >"$TMP/lat.txt"
for i in $(seq "$LAT"); do
    sleep 0.2
    psql -c "INSERT INTO saga_outbox (id, saga, input, created_at)
             VALUES ('lat-$i', 'outbox_bench', '{\"n\": $i}', clock_timestamp())"
    for _ in $(seq 400); do
        st=$("$SAGA" status "lat-$i" --redis "$REDIS" --json 2>/dev/null || true)
        [ -n "$st" ] && [ "$(echo "$st" | jq -r '.created // empty')" != "" ] && break
        sleep 0.01
    done
    created=$(echo "$st" | jq -r .created)
    row=$(psql -Atc "SELECT extract(epoch FROM created_at), extract(epoch FROM delivered_at)
                     FROM saga_outbox WHERE id = 'lat-$i'")
    saga_s=$(date -d "$created" +%s.%N)
    echo "$row|$saga_s" | awk -F'|' '{printf "%.3f %.3f\n", ($3 - $1) * 1000, ($2 - $1) * 1000}' \
        >>"$TMP/lat.txt"
done
relay_stop
pct() { # column percentile
    sort -n -k"$1" "$TMP/lat.txt" | awk -v c="$1" -v p="$2" '{v[NR] = $c}
        END {i = int(NR * p / 100 + 0.999); if (i < 1) i = 1; printf "%.1f", v[i]}'
}
L50=$(pct 1 50); L95=$(pct 1 95); LMAX=$(pct 1 100)
D50=$(pct 2 50); D95=$(pct 2 95)
VERDICT=$(awk -v x="$L95" 'BEGIN {print (x < 50) ? "**PASS**" : "**MISS**"}')

cat <<EOF
## The outbox relay (\`saga relay\`, issue 22)

Written by \`bench/outbox_bench.sh\` (from \`scripts/bench.sh\`; this run at $(git -C "$(dirname "$0")" rev-parse --short HEAD 2>/dev/null || echo '?'), niced, the 2 cores shared with other work):
PostgreSQL $PG_VERSION (fsync on, unix socket), Redis AOF everysec, one worker
(concurrency 1000) running a one-step \`demo.noop\` saga, one relay; everything on the
same 2 cores. Rows are committed in one transaction of $ROWS rows, the relay and the
worker waiting; "relayed" is commit to the last \`delivered_at\` (the saga's start
request is in Redis), "finished" is commit to the worker having finished all of them.

| scenario | rows relayed/s | sagas finished/s (end to end) |
|---|---|---|
| \`--batch 100\` (default), $ROWS rows | $T100_ROWS ($T100_DS s) | $T100_SAGAS ($T100_ES s) |
| \`--batch 1000\`, $ROWS rows | $T1000_ROWS ($T1000_DS s) | $T1000_SAGAS ($T1000_ES s) |

NOTIFY to saga at idle, $LAT single-row transactions 200 ms apart: from the row's
insert (\`clock_timestamp()\`, just before its commit) to the worker creating the saga's
record:

| target | goal | measured | verdict |
|---|---|---|---|
| committed row to running saga, idle relay | < 50 ms | p50 $L50 ms, p95 $L95 ms, max $LMAX ms (to \`delivered_at\`: p50 $D50 ms, p95 $D95 ms) | $VERDICT |
EOF
