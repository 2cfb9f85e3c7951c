#!/usr/bin/env bash
# The whole benchmark, from a fresh Debian 12 machine: installs what is
# missing, builds Release in build-bench/, starts its own redis-server
# processes (unix sockets in a temp dir, never a TCP port), runs every
# scenario of issue 7 and writes bench/RESULTS.md, bench/throughput.png and
# the raw figures (one JSON object per run) in bench/results.jsonl.
# docs/benchmarks.md says what each figure means.
#
#   bash scripts/bench.sh               everything (about 15 minutes)
#   SAGA_BENCH_QUICK=1 bash scripts/bench.sh   short runs (a smoke test)
#   SAGA_BENCH_KEEP=1 ...               keep the temp dir (logs, AOF files)
#   SAGA_BENCH_REPS=N ...               runs per throughput/latency point (default 3; QUICK: 1)
#   bash scripts/bench.sh round2        issue 21's scenario alone: the protocol floor,
#                                       the production path (saga worker) and the engine,
#                                       on one Redis and on a loopback Redis Cluster (3 + 3),
#                                       their two sections of bench/RESULTS.md replaced
#                                       (bench/round2.sh; QUICK: 10,000 sagas a run, 1 round;
#                                       SAGA_ROUND2_TARGETS="single cluster" by default;
#                                       the cluster's runs: SAGA_ROUND2_CLUSTER_SAGAS, default
#                                       30,000, SAGA_ROUND2_SHARDS, SAGA_ROUND2_MIN_REPLICAS)
#   bash scripts/bench.sh instructions  issue 21's three kinds counted in instructions Redis
#                                       executes per saga (valgrind's callgrind; deterministic
#                                       where sagas/s are not), its section of bench/RESULTS.md
#                                       replaced (bench/redis_instructions.sh; SAGA_INSTR_SAGAS,
#                                       default 3,000, QUICK 500)
set -euo pipefail
cd "$(dirname "$0")/.."
SCENARIO=${1:-all}
case "$SCENARIO" in
    all | round2 | instructions) ;;
    *) echo "usage: bash scripts/bench.sh [round2 | instructions]" >&2; exit 2 ;;
esac
ROOT=$PWD
BUILD=$ROOT/build-bench
OUT=$ROOT/bench
QUICK=${SAGA_BENCH_QUICK:-0}
COMMAND="bash scripts/bench.sh"
[ "$QUICK" = 1 ] && COMMAND="SAGA_BENCH_QUICK=1 bash scripts/bench.sh"

# ------------------------------------------------------------------------
# Dependencies and build
# ------------------------------------------------------------------------
bash scripts/deps.sh --bench

echo "== build (Release, $BUILD)" >&2
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DSAGA_TESTS=OFF >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target saga saga-bench saga-write-shape saga-floor \
    saga-submit-bulk plugin_demo >/dev/null

# round2_section TARGET: issue 21's measurements (bench/round2.sh) on one
# Redis (single) or a loopback Redis Cluster (cluster), on stdout.
round2_section() {
    local n=${SAGA_ROUND2_SAGAS:-100000} reps=${SAGA_ROUND2_REPS:-3}
    [ "$1" = cluster ] && n=${SAGA_ROUND2_CLUSTER_SAGAS:-30000}
    [ "$QUICK" = 1 ] && { n=${SAGA_ROUND2_SAGAS:-10000}; reps=${SAGA_ROUND2_REPS:-1}; }
    echo "== round 2 (issue 21), $1: protocol floor, production path, engine; $reps round(s) of $n sagas" >&2
    SAGA_ROUND2_TARGET=$1 SAGA_ROUND2_SAGAS=$n SAGA_ROUND2_REPS=$reps bash "$ROOT/bench/round2.sh" "$BUILD"
}
# put_section HEADING [AFTER]: bench/RESULTS.md with its section that starts
# with HEADING (up to the next "## ") replaced by $OUT/RESULTS.md.section; a
# section not there yet goes right after the section that starts with
# AFTER (when given and present), else at the end.
put_section() {
    local head=$1 after=${2:-} has_own
    [ -f "$OUT/RESULTS.md" ] || : >"$OUT/RESULTS.md"
    has_own=$(grep -cF "$head" "$OUT/RESULTS.md" || true)
    awk -v has_own="$has_own" -v head="$head" -v after="$after" -v file="$OUT/RESULTS.md.section" '
        function put(l) { while ((getline l < file) > 0) print l; print ""; done = 1 }
        /^## / && in_after && !done && !has_own { put() }
        /^## / { in_after = after != "" && index($0, after) == 1; skip = 0 }
        index($0, head) == 1 { skip = 1; put(); next }
        !skip
        END { if (!done) { print ""; put() } }' "$OUT/RESULTS.md" >"$OUT/RESULTS.md.new"
    mv "$OUT/RESULTS.md.new" "$OUT/RESULTS.md"
    rm -f "$OUT/RESULTS.md.section"
}
# instructions_section: issue 21's kinds counted in instructions Redis
# executes per saga (bench/redis_instructions.sh), on stdout.
INSTR_HEADING="## Redis instructions per saga (issue 21): "
instructions_section() {
    local n=${SAGA_INSTR_SAGAS:-3000}
    [ "$QUICK" = 1 ] && n=${SAGA_INSTR_SAGAS:-500}
    echo "== Redis instructions per saga (issue 21), under callgrind: $n sagas a run" >&2
    SAGA_INSTR_SAGAS=$n bash "$ROOT/bench/redis_instructions.sh" "$BUILD"
}
if [ "$SCENARIO" = instructions ]; then
    instructions_section >"$OUT/RESULTS.md.section"
    put_section "$INSTR_HEADING"
    echo "== wrote its section of bench/RESULTS.md" >&2
    exit 0
fi
# The heading that starts each target's section (bench/round2.sh writes it).
declare -A ROUND2_HEADING=([single]="## Throughput round 2 (issue 21): "
                           [cluster]="## Throughput round 2 (issue 21), Redis Cluster: ")
read -r -a ROUND2_TARGETS <<<"${SAGA_ROUND2_TARGETS:-single cluster}"
if [ "$SCENARIO" = round2 ]; then
    for target in "${ROUND2_TARGETS[@]}"; do
        [ -n "${ROUND2_HEADING[$target]:-}" ] ||
            { echo "SAGA_ROUND2_TARGETS: expected single and/or cluster, got '$target'" >&2; exit 2; }
        round2_section "$target" >"$OUT/RESULTS.md.section"
        # a new one goes right after the other target's section
        other=single
        [ "$target" = single ] && other=cluster
        put_section "${ROUND2_HEADING[$target]}" "${ROUND2_HEADING[$other]}"
        echo "== wrote its $target section of bench/RESULTS.md" >&2
    done
    exit 0
fi
BENCH=$BUILD/bin/saga-bench
SHAPE=$BUILD/bin/saga-write-shape
SAGA=$BUILD/bin/saga

# ------------------------------------------------------------------------
# Sizes (QUICK: a smoke test of the whole pipeline, figures not meaningful)
# ------------------------------------------------------------------------
CONCS=(1 10 100 500 1000 2000)
if [ "$QUICK" = 1 ]; then
    DUR=1; MEM_DUR=1; WARM=200; MEM_WARM=2000; CEIL_S=1; HALF_DUR=2; HALF_KEEP_S=2
    INFLIGHT=10000; TAKEOVER=1000; REPS=1
else
    DUR=5; MEM_DUR=4; WARM=2000; MEM_WARM=20000; CEIL_S=5; HALF_DUR=10; HALF_KEEP_S=10
    INFLIGHT=100000; TAKEOVER=10000; REPS=3
fi
REPS=${SAGA_BENCH_REPS:-$REPS}
MAX_SAGAS=2000000      # every run is bounded in count ...
RUN_LIMIT=120          # ... and in time (saga-bench --max-seconds)
LEASE_S=2

TMP=$(mktemp -d /tmp/saga-bench.XXXXXX)
RAW=$TMP/results.jsonl
: >"$RAW"
PIDS=()

cleanup() {
    local rc=$?
    for pid in "${PIDS[@]}"; do
        kill -9 "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [ -n "${SAGA_BENCH_KEEP:-}" ]; then
        echo "bench.sh: kept $TMP" >&2
    else
        rm -rf "$TMP"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "== $*" >&2; }

# ------------------------------------------------------------------------
# Redis servers
# ------------------------------------------------------------------------
# start_redis NAME FSYNC: a redis-server on $TMP/NAME/redis.sock with AOF
# and the given appendfsync. No RDB snapshots and no automatic AOF
# rewrite: both fork and would land at random points of the runs.
start_redis() {
    local name=$1 fsync=$2 dir=$TMP/$1
    mkdir -p "$dir"
    redis-server --port 0 --unixsocket "$dir/redis.sock" --unixsocketperm 700 \
        --dir "$dir" --appendonly yes --appendfsync "$fsync" --save "" \
        --auto-aof-rewrite-percentage 0 --maxmemory-policy noeviction \
        --latency-monitor-threshold 1 --logfile "$dir/redis.log" &
    PIDS+=($!)
    eval "REDIS_PID_$name=$!"
    for _ in $(seq 100); do
        redis-cli -s "$dir/redis.sock" ping >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "bench.sh: redis-server $name did not start; see $dir/redis.log" >&2
    exit 1
}
sock() { echo "$TMP/$1/redis.sock"; }
rcli() { local s; s=$(sock "$1"); shift; redis-cli -s "$s" "$@"; }

# A scenario starts with the disk quiet: the previous one may have left
# gigabytes of AOF in the page cache, and their writeback would land in
# this one's fsyncs and AOF writes (a production Redis would also have
# rewritten such an AOF long before, see compact_aof).
settle_disk() { sync; }
wait_rewrite() { # NAME: waits (up to 20 s) for an AOF rewrite to finish
    for _ in $(seq 200); do
        rcli "$1" info persistence | grep -q '^aof_rewrite_in_progress:0' && return 0
        sleep 0.1
    done
}
# compact_aof NAME: BGREWRITEAOF of an (emptied) server, as Redis does on
# its own when the AOF has doubled (auto-aof-rewrite-percentage, which the
# benchmark servers turn off so that no rewrite forks in the middle of a run).
compact_aof() {
    wait_rewrite "$1"
    rcli "$1" bgrewriteaof >/dev/null
    sleep 0.2
    wait_rewrite "$1"
}

# stop_pid PID: stops one process we started.
stop_pid() {
    kill -9 "$1" 2>/dev/null || true
    { wait "$1"; } 2>/dev/null || true
}

# ------------------------------------------------------------------------
# One saga-bench run: its JSON report goes to $RAW with the label given.
# ------------------------------------------------------------------------
bench() { # LABEL saga-bench-args...
    local label=$1
    shift
    local out
    if ! out=$(timeout $((RUN_LIMIT + 30)) "$BENCH" --label "$label" --max-seconds "$RUN_LIMIT" "$@" \
               2>"$TMP/$label.err"); then
        echo "bench.sh: run $label failed:" >&2
        tail -n 5 "$TMP/$label.err" >&2
        exit 1
    fi
    echo "$out" >>"$RAW"
    echo "$out" | jq -r '"   \(.label): \(.sagas) sagas, \(.sagas_per_s) sagas/s, \(.steps_per_s) steps/s, step p50/p99 \(.latency.step_overhead_ms.p50)/\(.latency.step_overhead_ms.p99) ms"' >&2
}

# A shared VM's neighbours come and go: one run of a few seconds can lose a
# quarter of its throughput to them. Throughput and latency points are run
# $REPS times (labels LABEL.run1 ...) and the run with the median figure is
# the one reported, whole, under LABEL (with every run's figure in
# `repeats`): not the best run, not the worst.
median_of() { # JQ-PATH LABEL   e.g. median_of .sagas_per_s everysec-c100
    local path=$1 label=$2 out
    out=$(jq -cs --arg l "$label" "
        [.[] | select(.label | startswith(\$l + \".run\"))] as \$r
        | (\$r | sort_by($path)) as \$s
        | \$s[((\$s | length) - 1) / 2 | floor] as \$m
        | \$m + {label: \$l, run: \$m.label, repeats: (\$r | map($path))}" "$RAW")
    echo "$out" >>"$RAW"
    echo "$out" | jq -r '"   \(.label): median of \(.repeats | length) (\(.repeats | map(tostring) | join(", ")))"' >&2
}

get() { # LABEL JQ-EXPR
    jq -r --arg l "$1" "select(.label == \$l) | $2" "$RAW"
}

# ------------------------------------------------------------------------
# The ceiling: redis-benchmark with the engine's own write shape
# ------------------------------------------------------------------------
# capture_shape NAME: MONITOR during a short 3-step run; the write closest
# to the mean size becomes the redis-benchmark command (saga-write-shape).
capture_shape() {
    local name=$1
    # redis-cli itself in the background (not a function: $! must be its
    # pid, or MONITOR would stay attached and slow every later run).
    redis-cli -s "$(sock "$name")" monitor >"$TMP/monitor.txt" 2>/dev/null &
    local mpid=$!
    PIDS+=($mpid)
    sleep 0.3
    "$BENCH" --store redis --redis "unix://$(sock "$name")" -n 20 -c 1 -s 3 >/dev/null 2>&1
    sleep 0.3
    stop_pid "$mpid"
    "$SHAPE" "$TMP/monitor.txt" >"$TMP/shape.bin" 2>"$TMP/shape.txt"
    mapfile -d '' SHAPE_ARGS <"$TMP/shape.bin"
    SHAPE_DESC=$(cat "$TMP/shape.txt")
    rcli "$name" flushall >/dev/null
    [ "$(rcli "$name" client list | grep -c 'cmd=monitor')" = 0 ] ||
        { echo "bench.sh: MONITOR still attached" >&2; exit 1; }
}

# ceiling LABEL NAME CLIENTS PIPELINE: FCALL/s of the shape, for about
# $CEIL_S seconds (a short run first sizes -n).
ceiling() {
    local label=$1 name=$2 c=$3 p=$4 s rps n csv
    s=$(sock "$name")
    rcli "$name" flushall >/dev/null
    n=$(( c * p * 20 > 20000 ? c * p * 20 : 20000 ))
    csv=$(timeout 60 redis-benchmark -s "$s" -n "$n" -c "$c" -P "$p" -r 100000000 --csv \
          "${SHAPE_ARGS[@]}" | tail -n 1)
    rps=$(echo "$csv" | awk -F'","' '{print $2}' | cut -d. -f1)
    n=$(( rps * CEIL_S ))
    [ "$n" -gt 3000000 ] && n=3000000
    [ "$n" -lt 1000 ] && n=1000
    rcli "$name" flushall >/dev/null
    csv=$(timeout 120 redis-benchmark -s "$s" -n "$n" -c "$c" -P "$p" -r 100000000 --csv \
          "${SHAPE_ARGS[@]}" | tail -n 1)
    rcli "$name" flushall >/dev/null
    echo "$csv" | awk -F'","' -v l="$label" -v c="$c" -v p="$p" -v n="$n" '{
        gsub(/"/, "", $NF);
        printf "{\"label\":\"%s\",\"kind\":\"ceiling\",\"clients\":%d,\"pipeline\":%d,\"requests\":%d,\"fcall_per_s\":%s,\"p50_ms\":%s,\"p99_ms\":%s}\n",
               l, c, p, n, $2, $5, $7 }' >>"$RAW"
    echo "   $label: -c $c -P $p -n $n: $(get "$label" .fcall_per_s) FCALL/s" >&2
}

# ------------------------------------------------------------------------
# Scenarios
# ------------------------------------------------------------------------
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

log "memory store: 3-step noop sagas at each concurrency; 10-step at 100"
for c in "${CONCS[@]}"; do
    for i in $(seq "$REPS"); do
        bench "mem-c$c.run$i" --store memory -s 3 -c "$c" -n "$MAX_SAGAS" --duration "$MEM_DUR" \
            --warmup "$MEM_WARM"
    done
    median_of .sagas_per_s "mem-c$c"
done
for i in $(seq "$REPS"); do
    bench "mem-s10-c100.run$i" --store memory -s 10 -c 100 -n "$MAX_SAGAS" --duration "$MEM_DUR" \
        --warmup "$MEM_WARM"
done
median_of .sagas_per_s "mem-s10-c100"

start_redis everysec everysec
capture_shape everysec
for fsync in everysec always; do
    if [ "$fsync" = always ]; then
        settle_disk
        start_redis always always
    fi
    # The store's connections as docs/redis-layout.md advises: the default
    # (1) with everysec, SAGA_REDIS_CONNECTIONS=4 with always.
    CONN_ARGS=()
    [ "$fsync" = always ] && CONN_ARGS=(--redis-connections 4)
    log "redis, AOF $fsync: 3-step noop sagas at each concurrency, then the ceiling at the same (-c N -P C/N, N the store's connections)"
    for c in "${CONCS[@]}"; do
        for i in $(seq "$REPS"); do
            rcli "$fsync" flushall >/dev/null
            bench "$fsync-c$c.run$i" --store redis --redis "unix://$(sock "$fsync")" -s 3 -c "$c" \
                -n "$MAX_SAGAS" --duration "$DUR" --warmup "$WARM" "${CONN_ARGS[@]}"
        done
        median_of .sagas_per_s "$fsync-c$c"
        # Like the engine: its connections, C outstanding over them.
        conns=$(get "$fsync-c$c" .redis.connections)
        k=$(( c < conns ? c : conns ))
        ceiling "ceil-$fsync-c$c" "$fsync" "$k" $(( c / k ))
    done
done

# The headline concurrency: where Redis everysec gave the most sagas/s.
best_c() { # PREFIX
    jq -rs --arg p "$1" '[.[] | select(.label | test("^" + $p + "-c[0-9]+$"))] | max_by(.sagas_per_s) | .concurrency' "$RAW"
}
BEST_EVERYSEC=$(best_c everysec)
BEST_ALWAYS=$(best_c always)
log "ceiling sensitivity at c=$BEST_EVERYSEC (everysec): other splits of the same outstanding requests"
for split in 1 16 "$BEST_EVERYSEC"; do
    [ "$split" -gt "$BEST_EVERYSEC" ] && continue
    ceiling "ceil-everysec-c$BEST_EVERYSEC-x$split" everysec "$split" $(( BEST_EVERYSEC / split ))
done

log "per-step overhead at half the maximum load (Redis everysec, open loop at max/2)"
MAX_RATE=$(get "everysec-c$BEST_EVERYSEC" .sagas_per_s | cut -d. -f1)
HALF=$(( MAX_RATE / 2 ))
# redis_stalls LABEL: what Redis's latency monitor saw (events of 1 ms or
# more since the last reset) and its delayed AOF fsyncs, as one JSON line.
redis_stalls() {
    local events delayed
    events=$(rcli everysec latency latest | paste - - - - |
        awk -F'\t' '$1 != "" {printf "%s{\"event\":\"%s\",\"latest_ms\":%d,\"max_ms\":%d}", n++ ? "," : "", $1, $3, $4}')
    delayed=$(rcli everysec info persistence | tr -d '\r' | awk -F: '/^aof_delayed_fsync:/ {print $2}')
    jq -nc --arg l "$1" --argjson d "${delayed:-0}" --argjson ev "[$events]" \
        '{label: $l, kind: "redis-latency", aof_delayed_fsync: $d, events: $ev}' >>"$RAW"
}
# half_run LABEL steady|fresh [probe]: $REPS runs; the reported one has the
# median per-step p99. With "probe", one more run at the same settings,
# LABEL-probe, PINGs Redis every ms from a thread of its own (the PING rows
# of the report): kept out of the reported runs, where its 1,000 lone
# commands a second would wake Redis on their own and add to what is judged. "steady": finished sagas are kept HALF_KEEP_S seconds, then
# the store's GC deletes them, and the run warms up at the same rate for
# HALF_KEEP_S + 4 s first: when it measures, sagas are deleted as fast as
# they finish and the keyspace holds its size, as on a production server
# with a retention. "fresh": a server emptied just before, 2,000 sagas of
# warm-up, the keyspace growing from nothing through the run (Redis's hash
# tables double on the way: docs/benchmarks.md "Half the maximum load").
half_run() {
    local extra=(--warmup "$WARM")
    [ "$2" = steady ] && extra=(--retention-ms $(( HALF_KEEP_S * 1000 ))
                                --warmup $(( HALF * (HALF_KEEP_S + 4) )))
    rcli everysec config resetstat >/dev/null
    for i in $(seq "$REPS"); do
        rcli everysec flushall >/dev/null
        # After the FLUSHALL (itself a slow command): only the run's events.
        rcli everysec latency reset >/dev/null
        bench "$1.run$i" --store redis --redis "unix://$(sock everysec)" -s 3 -c 2000 --rate "$HALF" \
            -n "$MAX_SAGAS" --duration "$HALF_DUR" "${extra[@]}"
        redis_stalls "$1-redis.run$i"
    done
    median_of .latency.step_overhead_ms.p99 "$1"
    if [ "${3:-}" = probe ]; then
        rcli everysec flushall >/dev/null
        bench "$1-probe" --store redis --redis "unix://$(sock everysec)" -s 3 -c 2000 --rate "$HALF" \
            -n "$MAX_SAGAS" --duration "$HALF_DUR" "${extra[@]}" --ping-probe
    fi
}
rcli everysec flushall >/dev/null
compact_aof everysec
settle_disk
half_run everysec-half steady probe
# The same with the AOF off, to tell the stalls the AOF causes from the rest.
rcli everysec config set appendonly no >/dev/null
half_run everysec-half-noaof steady probe
rcli everysec config set appendonly yes >/dev/null
wait_rewrite everysec
# And on a fresh server, to show what the keyspace's growth adds.
rcli everysec flushall >/dev/null
compact_aof everysec
half_run everysec-half-fresh fresh
wait_rewrite everysec

log "memory per in-flight saga: $INFLIGHT sleeping sagas on one engine"
rcli everysec flushall >/dev/null
bench "inflight-redis" --store redis --redis "unix://$(sock everysec)" -s 1 -c "$INFLIGHT" \
    --sleep-ms 600000 --inflight-rss
bench "inflight-memory" --store memory -s 1 -c "$INFLIGHT" --sleep-ms 600000 --inflight-rss
stop_pid "$REDIS_PID_always"

# ------------------------------------------------------------------------
# Takeover: real `saga worker` processes
# ------------------------------------------------------------------------
log "takeover: $TAKEOVER sagas in flight on worker A (kill -9), resumed by worker B (lease ${LEASE_S}s)"
start_redis takeover everysec
TSOCK=$(sock takeover)
mkdir -p "$TMP/defs"
cat >"$TMP/defs/takeover.yaml" <<'YAML'
saga: bench_takeover
steps:
  - name: wait
    action: {handler: demo.sleep, with: {ms: 180000}}
    compensation: {handler: demo.noop}
    timeout: 300s
YAML
worker() { # NAME
    SAGA_LOG=warn "$SAGA" worker --redis "unix://$TSOCK" --defs "$TMP/defs" --lease "${LEASE_S}s" \
        --concurrency 20000 --name "$1" >"$TMP/worker-$1.log" 2>&1 &
    PIDS+=($!)
    eval "WORKER_$1=$!"
}
wait_for() { # SECONDS COMMAND...: polls every 20 ms until COMMAND succeeds
    local deadline=$(( $(date +%s%N) + $1 * 1000000000 ))
    shift
    until "$@"; do
        [ "$(date +%s%N)" -gt "$deadline" ] && return 1
        sleep 0.02
    done
}
owned() { rcli takeover scard "saga:{idx}:owned:$1"; }
owned_is() { [ "$(owned "$1")" = "$2" ]; }
has_def() { [ -n "$(rcli takeover hget 'saga:{idx}:defs' bench_takeover)" ]; }
has_lease() { [ -n "$(rcli takeover zscore 'saga:{idx}:workers' "$1")" ]; }

worker A
wait_for 20 has_def || { echo "bench.sh: worker A did not publish its definition" >&2; exit 1; }
HASH=$(rcli takeover hget 'saga:{idx}:defs' bench_takeover)
awk -v n="$TAKEOVER" -v h="$HASH" 'BEGIN {
    for (i = 0; i < n; i++) {
        m = split("FCALL saga_submit 2 saga:{idx}:intake saga:{idx}:submitted " sprintf("tk%024d", i) \
                  " bench_takeover " h " {} 604800000", a, " ");
        printf "*%d\r\n", m;
        for (j = 1; j <= m; j++) printf "$%d\r\n%s\r\n", length(a[j]), a[j];
    } }' | redis-cli -s "$TSOCK" --pipe >/dev/null
wait_for 60 owned_is A "$TAKEOVER" || { echo "bench.sh: A runs $(owned A) of $TAKEOVER" >&2; exit 1; }
sleep 1 # every handler call started (the first write precedes it)
worker B
wait_for 20 has_lease B || { echo "bench.sh: worker B did not start" >&2; exit 1; }
sleep 0.5
KILL_MS=$(date +%s%3N)
kill -9 "$WORKER_A"
{ wait "$WORKER_A"; } 2>/dev/null || true
first=""
deadline=$(( KILL_MS + 30000 ))
while :; do
    n=$(owned B)
    now=$(date +%s%3N)
    [ -z "$first" ] && [ "$n" -gt 0 ] && first=$now
    [ "$n" = "$TAKEOVER" ] && break
    [ "$now" -gt "$deadline" ] && break
    sleep 0.02
done
OWNED_MS=$now
OWNED_N=$n
# Resumed = B wrote the saga again: its `saga.resumed` history entry,
# whose first field is the server's time of that write (ms, the same
# machine's clock as KILL_MS). The step sleeps far longer than all this,
# so no saga finishes meanwhile.
TKEYS=()
for ((i = 0; i < TAKEOVER; i++)); do
    printf -v id 'tk%024d' "$i"
    TKEYS+=("saga:{$id}" "saga:{$id}:history")
done
resumed_stats() {
    rcli takeover eval '
        local n, maxt, owner = 0, 0, 0
        for i = 1, #KEYS, 2 do
          if redis.call("HGET", KEYS[i], "owner") == ARGV[1] then owner = owner + 1 end
          local h = redis.call("LRANGE", KEYS[i + 1], 0, -1)
          for j = #h, 1, -1 do
            local t, w = string.match(h[j], "^(%d+)\t%d+\t([^\t]*)\t")
            if w == ARGV[1] and string.find(h[j], "\tsaga.resumed\t", 1, true) then
              n = n + 1
              if tonumber(t) > maxt then maxt = tonumber(t) end
              break
            end
          end
        end
        return {n, maxt, owner}' "${#TKEYS[@]}" "${TKEYS[@]}" B
}
for _ in $(seq 60); do
    mapfile -t RS < <(resumed_stats)
    [ "${RS[0]}" = "$TAKEOVER" ] && break
    sleep 0.5
done
stop_pid "$WORKER_B"
jq -nc --argjson n "$TAKEOVER" --argjson lease "$LEASE_S" --argjson kill "$KILL_MS" \
    --argjson first "${first:-0}" --argjson owned "$OWNED_MS" --argjson owned_n "$OWNED_N" \
    --argjson resumed "${RS[0]}" --argjson maxt "${RS[1]}" --argjson owner_b "${RS[2]}" '
    {label: "takeover", kind: "takeover", sagas: $n, lease_s: $lease,
     first_claim_s: (if $first > 0 then ($first - $kill) / 1000 else null end),
     all_owned_by_b_s: (($owned - $kill) / 1000), owned_by_b: $owned_n, owner_field_b: $owner_b,
     resumed_by_b: $resumed, all_resumed_s: (if $maxt > 0 then ($maxt - $kill) / 1000 else null end)}' >>"$RAW"
echo "   takeover: $(get takeover '"owned by B after \(.all_owned_by_b_s) s, \(.resumed_by_b) resumed after \(.all_resumed_s) s"')" >&2
stop_pid "$REDIS_PID_takeover"
stop_pid "$REDIS_PID_everysec"
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# ------------------------------------------------------------------------
# Plot
# ------------------------------------------------------------------------
log "plot and report"
for p in mem everysec always; do
    jq -rs --arg p "$p" '[.[] | select(.label | test("^" + $p + "-c[0-9]+$"))] | sort_by(.concurrency)[] |
        "\(.concurrency) \(.sagas_per_s)"' "$RAW" >"$TMP/$p.dat"
done
for p in everysec always; do
    # The ceiling in sagas/s: FCALL/s divided by the writes one saga needs.
    tps=$(get "$p-c100" .transitions_per_saga)
    jq -rs --arg p "$p" --argjson t "$tps" '[.[] | select(.label | test("^ceil-" + $p + "-c[0-9]+$"))] |
        sort_by(.clients * .pipeline)[] | "\(.clients * .pipeline) \(.fcall_per_s / $t)"' "$RAW" >"$TMP/ceil-$p.dat"
done
term="pngcairo size 960,600 font 'sans,10'"
gnuplot -e "set terminal $term" -e "quit" 2>/dev/null || term="png size 960,600"
gnuplot <<EOF
set terminal $term
set output '$OUT/throughput.png'
set title "3-step noop sagas/s against concurrency ($(nproc) cores shared by engine and Redis)"
set xlabel 'concurrency (sagas in flight)'
set ylabel 'sagas/s'
set logscale xy
set xrange [0.7:3000]
set format y '%.0f'
set grid
set key below
plot '$TMP/mem.dat' using 1:2 with linespoints lw 2 lc rgb '#7b3294' title 'memory store', \\
     '$TMP/everysec.dat' using 1:2 with linespoints lw 2 lc rgb '#1a9641' title 'Redis AOF everysec', \\
     '$TMP/always.dat' using 1:2 with linespoints lw 2 lc rgb '#2c7bb6' title 'Redis AOF always', \\
     '$TMP/ceil-everysec.dat' using 1:2 with lines dt 2 lw 1.5 lc rgb '#1a9641' title 'everysec ceiling (redis-benchmark FCALL/s / writes per saga)', \\
     '$TMP/ceil-always.dat' using 1:2 with lines dt 2 lw 1.5 lc rgb '#2c7bb6' title 'always ceiling'
EOF

# ------------------------------------------------------------------------
# RESULTS.md
# ------------------------------------------------------------------------
cp "$RAW" "$OUT/results.jsonl"
jq -rs \
   --arg date "$(date -u '+%Y-%m-%d %H:%M UTC')" \
   --arg cmd "$COMMAND" \
   --arg commit "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- engine definitions steps 2>/dev/null || echo ' + uncommitted engine changes')" \
   --arg nproc "$(nproc)" \
   --arg cpu "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')" \
   --arg mem "$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)" \
   --arg kernel "$(uname -sr)" \
   --arg redis "$(redis-server --version)" \
   --arg cc "$(cc --version | head -n 1)" \
   --arg load "$LOAD_BEFORE (before) / $LOAD_AFTER (after)" \
   --arg shape "$SHAPE_DESC" \
   --arg best_e "$BEST_EVERYSEC" --arg best_a "$BEST_ALWAYS" \
   --arg quick "$QUICK" \
   -f "$ROOT/bench/results.jq" "$RAW" >"$OUT/RESULTS.md"
# ------------------------------------------------------------------------
# The HTTP API (saga serve, issue 17): its section of RESULTS.md
# ------------------------------------------------------------------------
log "the HTTP API (bench/api_bench.sh)"
API_SECS=10
[ "$QUICK" = 1 ] && API_SECS=3
SAGA_API_BENCH_SECONDS=$API_SECS bash "$ROOT/bench/api_bench.sh" "$BUILD" >>"$OUT/RESULTS.md"

# ------------------------------------------------------------------------
# The outbox relay (saga relay, issue 22): its section of RESULTS.md
# ------------------------------------------------------------------------
log "the outbox relay (bench/outbox_bench.sh)"
OUTBOX_ROWS=20000; OUTBOX_LAT=50
[ "$QUICK" = 1 ] && { OUTBOX_ROWS=2000; OUTBOX_LAT=5; }
echo >>"$OUT/RESULTS.md"
SAGA_OUTBOX_BENCH_ROWS=$OUTBOX_ROWS SAGA_OUTBOX_BENCH_LATENCY_RUNS=$OUTBOX_LAT \
    bash "$ROOT/bench/outbox_bench.sh" "$BUILD" >>"$OUT/RESULTS.md"
printf '\n' >>"$OUT/RESULTS.md"

# ------------------------------------------------------------------------
# Redis Cluster (issue 20): one Redis against 3 primaries, its section
# ------------------------------------------------------------------------
log "Redis Cluster (bench/cluster_bench.sh)"
bash "$ROOT/bench/cluster_bench.sh" "$BUILD" >>"$OUT/RESULTS.md"
printf '\n' >>"$OUT/RESULTS.md"
round2_section single >>"$OUT/RESULTS.md"
printf '\n' >>"$OUT/RESULTS.md"
round2_section cluster >>"$OUT/RESULTS.md"
printf '\n' >>"$OUT/RESULTS.md"
instructions_section >>"$OUT/RESULTS.md"
log "wrote bench/RESULTS.md, bench/throughput.png, bench/results.jsonl"
sed -n '/^## Targets/,/^## /p' "$OUT/RESULTS.md" | sed '$d' >&2
