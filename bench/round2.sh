#!/usr/bin/env bash
# round2.sh BUILD_DIR [BUILD_DIR_B] -- issue 21's three measurements on one Redis, and the
# two ratios against the protocol floor, as a Markdown section on stdout
# (scripts/bench.sh appends it to bench/RESULTS.md; it runs alone with
# `bash scripts/bench.sh round2`):
#   floor       saga-floor: one hiredis-async connection, 1,000 sagas in
#               flight, 4 FCALLs per saga (HSET of 3 fields + XADD of 2)
#   production  N sagas pre-submitted with FCALL saga_submit, then one
#               `saga worker --concurrency 1000` drains them: from the
#               worker's start to the last saga finished
#   engine      saga-bench --store redis -s 3 -c 1000 (in process)
# 3-step noop sagas; every run on a fresh redis-server (AOF everysec, no
# RDB, no AOF rewrite); the kinds interleaved, SAGA_ROUND2_REPS rounds
# (default 3), each figure the median. Per saga, from the server's own
# counters over the run: Redis CPU (INFO cpu), commands (INFO
# commandstats, FCALL's inner calls included) and AOF bytes (INFO
# persistence, aof_current_size).
# With a second build (A/B: a change against its base), every round runs
# the floor, then production and engine of A then of B, and the section
# shows both, named by SAGA_ROUND2_NAMES ("before after" by default).
#   SAGA_ROUND2_SAGAS   sagas per run (default 100000)
#   SAGA_ROUND2_REPS    rounds (default 3)
#   SAGA_ROUND2_JSONL   also append each run's figures there (one JSON object each)
set -euo pipefail
BUILDS=("${1:?usage: round2.sh BUILD_DIR [BUILD_DIR_B]}")
[ $# -ge 2 ] && BUILDS+=("$2")
read -r -a NAMES <<<"${SAGA_ROUND2_NAMES:-before after}"
N=${SAGA_ROUND2_SAGAS:-100000}
REPS=${SAGA_ROUND2_REPS:-3}
C=1000
FLOOR=${BUILDS[0]}/bin/saga-floor
for B in "${BUILDS[@]}"; do
    for b in "$B/bin/saga" "$B/bin/saga-bench" "$FLOOR"; do
        [ -x "$b" ] || { echo "round2.sh: $b is missing (build it first)" >&2; exit 1; }
    done
done
# use BUILD_INDEX: the binaries of that build, and the suffix of its kinds
use() {
    SAGA=${BUILDS[$1]}/bin/saga
    BENCH=${BUILDS[$1]}/bin/saga-bench
    SUFFIX=""
    [ "${#BUILDS[@]}" -gt 1 ] && SUFFIX=" (${NAMES[$1]:-$1})"
    return 0
}
T=$(mktemp -d /tmp/saga-round2.XXXXXX)
RAW=$T/runs.jsonl
: >"$RAW"
REDIS_PID=""
WORKER_PID=""
cleanup() {
    local rc=$?
    for p in $WORKER_PID $REDIS_PID; do
        kill -9 "$p" 2>/dev/null || true
        { wait "$p"; } 2>/dev/null || true
    done
    rm -rf "$T"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

SOCK=$T/redis/redis.sock
rcli() { redis-cli -s "$SOCK" "$@"; }
start_redis() {
    rm -rf "$T/redis"
    mkdir -p "$T/redis"
    redis-server --port 0 --unixsocket "$SOCK" --unixsocketperm 700 --dir "$T/redis" \
        --appendonly yes --appendfsync everysec --save "" --auto-aof-rewrite-percentage 0 \
        --maxmemory-policy noeviction --logfile "$T/redis/redis.log" &
    REDIS_PID=$!
    for _ in $(seq 100); do
        rcli ping >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "round2.sh: redis-server did not start; see $T/redis/redis.log" >&2
    exit 1
}
stop_redis() {
    kill -9 "$REDIS_PID" 2>/dev/null || true
    { wait "$REDIS_PID"; } 2>/dev/null || true
    REDIS_PID=""
}
# snap: the server's counters as one JSON object {cpu, aof, cmds: {name: calls}}.
snap() {
    local info
    info=$(rcli info everything) || { echo "round2.sh: INFO failed" >&2; exit 1; }
    echo "$info" | tr -d '\r' | awk -F'[:,=]' '
        /^used_cpu_(sys|user):/ {cpu += $2}
        /^aof_current_size:/ {aof = $2}
        /^total_reads_processed:/ {reads = $2}
        /^cmdstat_/ {sub(/^cmdstat_/, "", $1); if ($1 != "info") {cmds = cmds sep "\"" $1 "\":" $3; sep = ","}}
        END {printf "{\"cpu\":%s,\"aof\":%s,\"reads\":%s,\"cmds\":{%s}}\n", cpu + 0, aof + 0, reads + 0, cmds}'
}
# check_json WHAT TEXT: fails the run when TEXT is not one JSON object.
check_json() {
    echo "$2" | jq -e 'type == "object"' >/dev/null 2>&1 ||
        { echo "round2.sh: $1 gave no figures: '$2'" >&2; exit 1; }
}
# record KIND ROUND SAGAS SECONDS BEFORE AFTER [CLIENT_CPU_S]: one run's
# figures in $RAW (the client's CPU: the worker's or saga-bench's).
record() {
    for x in "$3" "$4" "$5" "$6"; do
        echo "$x" | jq -e . >/dev/null 2>&1 || { echo "round2.sh: $1: bad figure '$x'" >&2; exit 1; }
    done
    jq -nc --arg kind "$1" --argjson round "$2" --argjson n "$3" --argjson s "$4" \
        --argjson a "$5" --argjson z "$6" --argjson ccpu "${7:-null}" '
        ($z.cmds | to_entries | map({key, value: ((.value - ($a.cmds[.key] // 0)) / $n)})
         | map(select(.value >= 0.005)) | from_entries) as $per
        | {kind: $kind, round: $round, sagas: $n, seconds: $s,
           sagas_per_s: (($n / $s) | floor),
           redis_cpu_us_per_saga: ((($z.cpu - $a.cpu) / $n * 1e7 | round) / 10),
           commands_per_saga: (([$per[]] | add) * 100 | round / 100),
           aof_bytes_per_saga: (($z.aof - $a.aof) / $n | round),
           client_cpu_us_per_saga: (if $ccpu == null then null else ($ccpu / $n * 1e7 | round) / 10 end),
           reads_per_saga: ((($z.reads - $a.reads) / $n * 100 | round) / 100),
           commandstats_per_saga: ($per | map_values(. * 100 | round / 100))}' | tee -a "$RAW" |
        jq -r '"   round2 \(.kind) #\(.round): \(.sagas_per_s) sagas/s, Redis \(.redis_cpu_us_per_saga) us, \(.commands_per_saga) commands, \(.aof_bytes_per_saga) AOF bytes, \(.reads_per_saga) reads per saga"' >&2
}
now_ns() { date +%s%N; }

run_floor() { # ROUND
    start_redis
    local a z out
    rcli config resetstat >/dev/null
    a=$(snap)
    out=$("$FLOOR" --redis "unix://$SOCK" -n "$N" -c "$C") ||
        { echo "round2.sh: saga-floor failed" >&2; exit 1; }
    z=$(snap)
    check_json saga-floor "$out"
    record floor "$1" "$N" "$(echo "$out" | jq .seconds)" "$a" "$z"
    stop_redis
}

run_engine() { # ROUND
    start_redis
    local a z out
    rcli config resetstat >/dev/null
    a=$(snap)
    out=$("$BENCH" --store redis --redis "unix://$SOCK" -s 3 -c "$C" -n "$N" --warmup 0 \
          --max-seconds 600) || { echo "round2.sh: saga-bench failed" >&2; exit 1; }
    z=$(snap)
    check_json saga-bench "$out"
    record "engine$SUFFIX" "$1" "$(echo "$out" | jq .sagas)" "$(echo "$out" | jq .elapsed_s)" "$a" "$z" \
        "$(echo "$out" | jq .cpu_s)"
    stop_redis
}

mkdir -p "$T/defs"
cat >"$T/defs/round2.yaml" <<'YAML'
saga: bench_round2
steps:
  - name: one
    action: {handler: demo.noop}
    compensation: {handler: demo.noop}
  - name: two
    action: {handler: demo.noop}
    compensation: {handler: demo.noop}
  - name: three
    action: {handler: demo.noop}
    compensation: {handler: demo.noop}
YAML
start_worker() { # NAME
    SAGA_LOG=warn "$SAGA" worker --redis "unix://$SOCK" --defs "$T/defs" --concurrency "$C" \
        --name "$1" >>"$T/worker.log" 2>&1 &
    WORKER_PID=$!
}
stop_worker() {
    kill -TERM "$WORKER_PID" 2>/dev/null || true
    { wait "$WORKER_PID"; } 2>/dev/null || true
    WORKER_PID=""
}
wait_until() { # SECONDS COMMAND...: polls every 10 ms
    local deadline=$(( $(now_ns) + $1 * 1000000000 ))
    shift
    until "$@"; do
        [ "$(now_ns)" -gt "$deadline" ] && return 1
        sleep 0.01
    done
}
has_def() { [ -n "$(rcli hget 'saga:{idx}:defs' bench_round2)" ]; }
# Finished sagas have an index score >= 0 (docs/redis-layout.md).
all_finished() { [ "$(rcli zcount 'saga:{idx}:sagas' 0 +inf)" = "$N" ]; }

run_production() { # ROUND
    start_redis
    # A first worker publishes the definition, then stops: the submissions
    # name its hash, as `saga submit` would.
    start_worker publisher
    wait_until 30 has_def || { echo "round2.sh: the worker did not publish" >&2; exit 1; }
    stop_worker
    local hash a z t0 t1
    hash=$(rcli hget 'saga:{idx}:defs' bench_round2)
    awk -v n="$N" -v h="$hash" 'BEGIN {
        for (i = 0; i < n; i++) {
            m = split("FCALL saga_submit 2 saga:{idx}:intake saga:{idx}:submitted " sprintf("r2%024d", i) \
                      " bench_round2 " h " {} 604800000", a, " ");
            printf "*%d\r\n", m;
            for (j = 1; j <= m; j++) printf "$%d\r\n%s\r\n", length(a[j]), a[j];
        } }' | redis-cli -s "$SOCK" --pipe >/dev/null
    [ "$(rcli xlen 'saga:{idx}:intake')" = "$N" ] ||
        { echo "round2.sh: $(rcli xlen 'saga:{idx}:intake') of $N submitted" >&2; exit 1; }
    rcli config resetstat >/dev/null
    a=$(snap)
    t0=$(now_ns)
    start_worker drainer
    wait_until 600 all_finished ||
        { echo "round2.sh: the worker finished $(rcli zcount 'saga:{idx}:sagas' 0 +inf) of $N" >&2; exit 1; }
    t1=$(now_ns)
    z=$(snap)
    # The worker's CPU (user + system, clock ticks in /proc/PID/stat).
    local ccpu
    ccpu=$(awk -v hz="$(getconf CLK_TCK)" '{sub(/^.*\) /, ""); print ($12 + $13) / hz}' \
           "/proc/$WORKER_PID/stat")
    stop_worker
    # The run left nothing behind: every request acknowledged and deleted.
    [ "$(rcli xlen 'saga:{idx}:intake')" = 0 ] ||
        { echo "round2.sh: $(rcli xlen 'saga:{idx}:intake') start requests left" >&2; exit 1; }
    record "production$SUFFIX" "$1" "$N" "$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", (b - a) / 1e9}')" \
        "$a" "$z" "$ccpu"
    stop_redis
}

for r in $(seq "$REPS"); do
    run_floor "$r"
    for i in "${!BUILDS[@]}"; do
        use "$i"
        run_production "$r"
    done
    for i in "${!BUILDS[@]}"; do
        use "$i"
        run_engine "$r"
    done
done
[ -n "${SAGA_ROUND2_JSONL:-}" ] && jq -c '. + {label: ("round2-" + .kind + ".run" + (.round | tostring))}' \
    "$RAW" >>"$SAGA_ROUND2_JSONL"

# ------------------------------------------------------------------------
# The Markdown section
# ------------------------------------------------------------------------
ORDER=(floor)
for k in production engine; do
    for i in "${!BUILDS[@]}"; do use "$i"; ORDER+=("$k$SUFFIX"); done
done
jq -rs --arg n "$N" --arg reps "$REPS" --argjson order "$(printf '%s\n' "${ORDER[@]}" | jq -R . | jq -s .)" --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" '
def med(f): (map(f) | sort) as $s | $s[(($s | length) - 1) / 2 | floor];
def fmt: tostring | if test("^[0-9]{4,}$") then (. as $x | [range(($x | length); 0; -3)] | reverse
         | map($x[(if . - 3 < 0 then 0 else . - 3 end):.]) | join(",")) else . end;
group_by(.kind) | map({key: .[0].kind, value: .}) | from_entries as $k
| $order as $order
| ($k.floor | med(.sagas_per_s)) as $floor
| "## Throughput round 2 (issue 21): production path and engine against the protocol floor\n",
  "Written by `bash scripts/bench.sh round2` (bench/round2.sh): \($n) 3-step noop sagas per run,",
  "1,000 in flight, a fresh redis-server per run (AOF everysec), the three kinds interleaved, \($reps)",
  "rounds; each figure is the median of the rounds (every run in the last column). Taken on a",
  "**shared machine** (2 cores, other engineers building; load average \($load) at the end): the",
  "ratios, commands and bytes per saga are the stable figures, absolute sagas/s vary with the load.",
  "Per saga, from the server'"'"'s counters over the run: Redis CPU (INFO cpu), commands (INFO",
  "commandstats, FCALL'"'"'s inner calls included), AOF bytes (aof_current_size), reads",
  "(total_reads_processed: how many reads Redis made of its clients, the pipelining it saw), and the",
  "client'"'"'s CPU (the worker process'"'"'s from /proc, saga-bench'"'"'s own; the floor'"'"'s is not taken).\n",
  "| run | sagas/s | of the floor | Redis CPU µs / saga | commands / saga | AOF bytes / saga | Redis reads / saga | client CPU µs / saga | sagas/s of each run |",
  "|---|---|---|---|---|---|---|---|---|",
  ($order[] as $o | $k[$o] as $r
   | "| \($o) | \($r | med(.sagas_per_s) | fmt) | \(($r | med(.sagas_per_s)) / $floor * 100 | round) % | \($r | med(.redis_cpu_us_per_saga)) | \($r | med(.commands_per_saga)) | \($r | med(.aof_bytes_per_saga) | fmt) | \($r | med(.reads_per_saga)) | \($r | med(.client_cpu_us_per_saga) // "–") | \($r | map(.sagas_per_s | fmt) | join(" · ")) |"),
  "",
  "Of the floor of the same round, round by round: " +
  ([$order[1:][] as $o | "\($o) " + ([range(0; ($k.floor | length))] | map(. as $i
     | "\(($k[$o][$i].sagas_per_s / $k.floor[$i].sagas_per_s * 100) | round) %") | join(", "))]
   | join("; ")) + ".\n",
  "Commands per saga (median round of each kind, by sagas/s):\n",
  "| command | " + ($order | join(" | ")) + " |",
  ([$order[] | "---"] | "|---|" + join("|") + "|"),
  (($order | map(. as $o | $k[$o] | sort_by(.sagas_per_s) | .[((length - 1) / 2 | floor)].commandstats_per_saga)) as $cs
   | ($cs | map(keys) | add | unique)[] as $c
   | "| \($c) | " + ($cs | map(.[$c] // "" | tostring) | join(" | ")) + " |")
' "$RAW"
