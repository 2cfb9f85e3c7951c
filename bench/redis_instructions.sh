#!/usr/bin/env bash
# redis_instructions.sh BUILD_DIR [BUILD_DIR_B] -- issue 21's three kinds of
# run counted in instructions that redis-server executes per saga, under
# valgrind's callgrind, as a Markdown section on stdout (`bash
# scripts/bench.sh instructions` writes it into bench/RESULTS.md):
#   floor       saga-floor -c 500 (bench/floor.c: 4 FCALLs per saga)
#   engine      saga-bench --store redis -s 3 -c 500 (in process), after a
#               warm-up run of SAGA_INSTR_WARMUP sagas (default 300) that
#               loads the function library
#   production  a first `saga worker` publishes the definition and stops,
#               the sagas are submitted (saga-submit-bulk), then one `saga
#               worker --concurrency 1000` drains them
# Why: on a shared 2-core VM sagas/s and even Redis's CPU per saga (INFO
# cpu) move by +-30 % between identical runs; the instructions Redis
# executes for the same work repeat within about 1 % (without the work
# done on timers, within a few tenths of a %), so changes worth a
# few % of Redis's cost can be judged A/B. Instructions are not time: cache
# misses, syscalls and the kernel's side are not weighed (round2.sh's
# sagas/s and CPU stay the figures of record); and work done on timers
# (serverCron, the worker's scans) weighs more than in a native run, as
# callgrind stretches the run many times over.
# Each run: a fresh redis-server under `valgrind --tool=callgrind` (the
# server of round2.sh: unix socket in a temp dir, AOF everysec, no RDB, no
# AOF rewrite); the set-up (warm-up, publisher, submissions) runs first,
# then `callgrind_control -z` zeroes the counters, the measured phase runs
# (SAGA_INSTR_SAGAS sagas, default 3000), `callgrind_control -d` dumps
# them, and `callgrind_annotate --inclusive=yes` gives per saga the
# program's total and the inclusive count of chosen functions (the FCALL,
# Lua, AOF and parsing paths, the engine's commands, and any `*Command`
# above 0.5 % of a run's total). The production run's end is seen on the
# worker's /metrics (saga_worker_sagas_finished_total, a unix socket), so
# the wait adds no command to what Redis counts. One Redis only; the
# cluster is out of scope.
# With a second build (A/B), the floor runs once (the first build's), then
# engine and production of each build, named by SAGA_INSTR_NAMES ("before
# after" by default).
#   SAGA_INSTR_SAGAS    sagas per measured phase (default 3000)
#   SAGA_INSTR_WARMUP   the engine's warm-up sagas (default 300)
#   SAGA_INSTR_TIMEOUT  seconds any one step may take (default 900)
#   SAGA_INSTR_JSONL    also append each run's figures there (one JSON object each)
set -euo pipefail
BUILDS=("${1:?usage: redis_instructions.sh BUILD_DIR [BUILD_DIR_B]}")
[ $# -ge 2 ] && BUILDS+=("$2")
read -r -a NAMES <<<"${SAGA_INSTR_NAMES:-before after}"
N=${SAGA_INSTR_SAGAS:-3000}
WARM=${SAGA_INSTR_WARMUP:-300}
LIMIT=${SAGA_INSTR_TIMEOUT:-900}
C=500    # floor and engine: sagas in flight
WC=1000  # the worker's --concurrency
ME=redis_instructions.sh
die() { echo "$ME: $*" >&2; exit 1; }
for v in N WARM LIMIT; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "expected a positive integer for $v, got '${!v}'"
done
for t in valgrind callgrind_control callgrind_annotate redis-server redis-cli jq curl; do
    command -v "$t" >/dev/null 2>&1 ||
        die "$t is missing (valgrind: bash scripts/deps.sh --bench installs it)"
done
valgrind --tool=callgrind --version >/dev/null 2>&1 || die "valgrind has no callgrind tool"
# shellcheck source=bench/builds.sh
. "$(dirname "$0")/builds.sh"
builds_check "$ME"

T=$(mktemp -d /tmp/saga-instr.XXXXXX)
RAW=$T/runs.jsonl
: >"$RAW"
REDIS_PID=""
WORKER_PID=""
CLIENT_PID=""
cleanup() {
    local rc=$? p
    # The client under `timeout` passes TERM on to its command.
    [ -n "$CLIENT_PID" ] && kill -TERM "$CLIENT_PID" 2>/dev/null
    for p in $WORKER_PID $REDIS_PID; do kill -9 "$p" 2>/dev/null || true; done
    for p in $CLIENT_PID $WORKER_PID $REDIS_PID; do { wait "$p"; } 2>/dev/null || true; done
    rm -rf "$T"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now_ns() { date +%s%N; }
# gone PID: the process has exited (or is a zombie waiting to be reaped).
gone() {
    local s
    s=$(awk '{sub(/^.*\) /, ""); print $1}' "/proc/$1/stat" 2>/dev/null) || s=""
    [ -z "$s" ] || [ "$s" = Z ]
}
# wait_until SECONDS COMMAND...: polls every 200 ms; 1 at the deadline.
wait_until() {
    local deadline=$(( $(now_ns) + $1 * 1000000000 ))
    shift
    until "$@"; do
        [ "$(now_ns)" -gt "$deadline" ] && return 1
        sleep 0.2
    done
}
# bounded WHAT OUT COMMAND...: COMMAND (stdout to OUT, stderr to
# $T/WHAT.err) within LIMIT seconds, waited for in the background so that
# a signal to this script is handled at once; fails the run otherwise.
bounded() {
    local what=$1 out=$2 rc=0
    shift 2
    timeout -k 10 "$LIMIT" "$@" >"$out" 2>"$T/$what.err" &
    CLIENT_PID=$!
    wait "$CLIENT_PID" || rc=$?
    CLIENT_PID=""
    [ "$rc" = 124 ] && die "$what did not finish within $LIMIT s (SAGA_INSTR_TIMEOUT)"
    [ "$rc" = 0 ] || { tail -n 5 "$T/$what.err" >&2; die "$what failed (exit $rc)"; }
}

RDIR=$T/redis
SOCK=$RDIR/redis.sock
URL=unix://$SOCK
rcli() { redis-cli -s "$SOCK" "$@"; }
cg() { # callgrind_control ARGS: on this run's server, bounded
    timeout 120 callgrind_control --vgdb-prefix="$RDIR/vgdb" "$@" "$REDIS_PID" >>"$RDIR/control.log" 2>&1
}
start_redis() {
    rm -rf "$RDIR"
    mkdir -p "$RDIR"
    valgrind --tool=callgrind --callgrind-out-file="$RDIR/callgrind.out" \
        --vgdb-prefix="$RDIR/vgdb" --log-file="$RDIR/valgrind.log" \
        redis-server --port 0 --unixsocket "$SOCK" --unixsocketperm 700 --dir "$RDIR" \
        --appendonly yes --appendfsync everysec --save "" --auto-aof-rewrite-percentage 0 \
        --maxmemory-policy noeviction --logfile "$RDIR/redis.log" &
    REDIS_PID=$!
    wait_until 60 ping_ok || die "redis-server under callgrind did not start; see $RDIR/valgrind.log"
}
ping_ok() {
    gone "$REDIS_PID" && die "redis-server under callgrind exited; $(tail -n 3 "$RDIR/valgrind.log")"
    [ "$(rcli ping 2>/dev/null)" = PONG ]
}
stop_redis() {
    kill -9 "$REDIS_PID" 2>/dev/null || true
    { wait "$REDIS_PID"; } 2>/dev/null || true
    REDIS_PID=""
}
zero() { cg -z || die "$1: callgrind_control -z failed; see $RDIR/control.log"; }
# dump KIND: the counters since zero() into $RDIR/callgrind.out.1.
dump_ok() { [ -s "$RDIR/callgrind.out.1" ] && tail -n 1 "$RDIR/callgrind.out.1" | grep -q '^totals: '; }
dump() {
    cg -d || die "$1: callgrind_control -d failed; see $RDIR/control.log"
    wait_until 60 dump_ok || die "$1: the dump $RDIR/callgrind.out.1 is missing or incomplete"
}

# The functions shown, in this order, and what each one's inclusive count
# covers; any other *Command over 0.5 % of a run's total is added.
FUNCS=(processMultibulkBuffer fcallCommand luaCallFunction propagatePendingCommands
       feedAppendOnlyFile flushAppendOnlyFile hsetCommand hmgetCommand rpushCommand
       pushGenericCommand zaddGenericCommand publishCommand saddCommand sremCommand
       xreadCommand xackCommand xdelCommand serverCron)
declare -A WHAT=(
    [processMultibulkBuffer]="parsing the requests (RESP)"
    [fcallCommand]="FCALL, the function's commands included"
    [luaCallFunction]="the Lua function run by FCALL"
    [propagatePendingCommands]="propagation after a command (AOF and replicas)"
    [feedAppendOnlyFile]="building the AOF text"
    [flushAppendOnlyFile]="writing the AOF buffer (the write(2) call; the kernel's side is not counted)"
    [catAppendOnlyGenericCommand]="the AOF text of one command (within feedAppendOnlyFile)"
    [hsetCommand]="HSET"
    [hmgetCommand]="HMGET"
    [rpushCommand]="RPUSH"
    [pushGenericCommand]="LPUSH/RPUSH's body"
    [zaddGenericCommand]="ZADD's body"
    [publishCommand]="PUBLISH"
    [saddCommand]="SADD"
    [sremCommand]="SREM"
    [xreadCommand]="XREAD/XREADGROUP"
    [xackCommand]="XACK"
    [xdelCommand]="XDEL"
    [serverCron]="Redis's timer (hz 10): grows with the run's length, not its sagas"
    [xautoclaimCommand]="XAUTOCLAIM: the worker's takeover scan, on a timer"
)
# extract: callgrind_annotate's inclusive counts of the dump as one JSON
# object {total, fn: {name: count}} (the chosen functions and every *Command).
extract() {
    local f=$RDIR/callgrind.out.1 ann
    ann=$(callgrind_annotate --inclusive=yes --threshold=100 --auto=no "$f" 2>"$RDIR/annotate.err") ||
        die "$1: callgrind_annotate failed on $f: $(head -n 3 "$RDIR/annotate.err")"
    echo "$ann" | awk -v want=" ${FUNCS[*]} " '
        /PROGRAM TOTALS/ { gsub(",", "", $1); total = $1; next }
        # "  1,234,567 ( 0.12%)  file:function [object]"
        $1 ~ /^[0-9,]+$/ && $2 ~ /^\(/ {
            c = $1; gsub(",", "", c)
            rest = $0; sub(/^[^)]*\) +/, "", rest); split(rest, w, " ")
            n = split(w[1], p, ":"); fn = p[n]
            if (fn ~ /Command$/ || index(want, " " fn " "))
                if (!(fn in v) || c + 0 > v[fn] + 0) v[fn] = c
        }
        END {
            printf "{\"total\":%s,\"fn\":{", total + 0
            for (k in v) { printf "%s\"%s\":%s", sep, k, v[k]; sep = "," }
            print "}}"
        }' | jq -c . || die "$1: could not read the counts of $f"
}
# record KIND: the dump's figures per saga into $RAW.
record() {
    local x
    x=$(extract "$1")
    echo "$x" | jq -e '.total > 0' >/dev/null || die "$1: the dump counted no instructions"
    jq -nc --arg kind "$1" --argjson n "$N" --argjson x "$x" --arg secs "$2" \
        '{kind: $kind, sagas: $n, seconds_under_valgrind: ($secs | tonumber),
          instructions: $x.total, instructions_per_saga: ($x.total / $n | round),
          instructions_per_saga_without_timers:
            (($x.total - ($x.fn.serverCron // 0) - ($x.fn.xautoclaimCommand // 0)) / $n | round),
          functions_per_saga: ($x.fn | map_values(. / $n | round))}' | tee -a "$RAW" |
        jq -r '"   instructions \(.kind): \(.instructions_per_saga) per saga, \(.instructions_per_saga_without_timers) without the timers (\(.seconds_under_valgrind) s under callgrind)"' >&2
}
# measured KIND COMMAND...: zero, COMMAND (bounded, its stdout in
# $T/out.json), dump; SECS: the phase's seconds under callgrind.
measured() {
    local kind=$1 t0
    shift
    zero "$kind"
    t0=$(now_ns)
    bounded "$kind" "$T/out.json" "$@"
    dump "$kind"
    SECS=$(elapsed "$t0")
}
elapsed() { awk -v a="$1" -v b="$(now_ns)" 'BEGIN {printf "%.1f", (b - a) / 1e9}'; }
check_json() { # WHAT FILE: one JSON object with .sagas == N
    jq -e --argjson n "$N" 'type == "object" and .sagas == $n' "$2" >/dev/null 2>&1 ||
        die "$1 did not run its $N sagas: '$(head -c 300 "$2")'"
}

run_floor() {
    start_redis
    measured floor "$FLOOR" --redis "$URL" -n "$N" -c "$C"
    check_json saga-floor "$T/out.json"
    record floor "$SECS"
    stop_redis
}

run_engine() {
    start_redis
    bounded "engine warm-up" "$T/warm.json" "$BENCH" --store redis --redis "$URL" --min-replicas 0 \
        -s 3 -c "$C" -n "$WARM" --max-seconds "$LIMIT"
    measured "engine$SUFFIX" "$BENCH" --store redis --redis "$URL" --min-replicas 0 -s 3 \
        -c "$C" -n "$N" --warmup 0 --max-seconds "$LIMIT"
    check_json saga-bench "$T/out.json"
    jq -e '.failed == 0' "$T/out.json" >/dev/null || die "saga-bench: sagas failed"
    record "engine$SUFFIX" "$SECS"
    stop_redis
}

mkdir -p "$T/defs"
cp "$(dirname "$0")/round2.yaml" "$T/defs/round2.yaml"
METRICS=$T/metrics.sock
start_worker() { # NAME [METRICS_ARGS...]
    local name=$1
    shift
    # env execs the worker: WORKER_PID is the worker's own.
    env SAGA_LOG=warn "$SAGA" worker --redis "$URL" --defs "$T/defs" --concurrency "$WC" \
        --name "$name" "$@" >>"$T/worker.log" 2>&1 &
    WORKER_PID=$!
}
stop_worker() {
    kill -TERM "$WORKER_PID" 2>/dev/null || true
    wait_until 60 gone "$WORKER_PID" || kill -9 "$WORKER_PID" 2>/dev/null || true
    { wait "$WORKER_PID"; } 2>/dev/null || true
    WORKER_PID=""
}
worker_alive() {
    gone "$WORKER_PID" && die "the worker exited; $(tail -n 3 "$T/worker.log")"
    return 0
}
has_def() { worker_alive && [ -n "$(rcli hget 'saga:{idx}:defs' bench_round2)" ]; }
# The worker's own count of finished sagas: read over its /metrics (a unix
# socket), which costs Redis nothing.
finished_by_worker() {
    curl -s --max-time 5 --unix-socket "$METRICS" http://localhost/metrics 2>/dev/null |
        awk '/^saga_worker_sagas_finished_total/ {s += $2} END {printf "%d", s}'
}
drained() { worker_alive && [ "$(finished_by_worker)" -ge "$N" ]; }

run_production() {
    start_redis
    # A first worker publishes the definition, then stops: the submissions
    # name its hash, as `saga submit` does.
    start_worker publisher
    wait_until "$LIMIT" has_def || die "production$SUFFIX: the publisher did not publish the definition"
    stop_worker
    bounded saga-submit-bulk "$T/submit.out" "$SUBMIT" --redis "$URL" --name bench_round2 -n "$N" -c "$WC"
    [ "$(rcli xlen 'saga:{idx}:intake')" = "$N" ] ||
        die "production$SUFFIX: $(rcli xlen 'saga:{idx}:intake') of $N submitted"
    local kind="production$SUFFIX" t0
    zero "$kind"
    t0=$(now_ns)
    rm -f "$METRICS"
    start_worker drainer --metrics "unix:$METRICS"
    wait_until "$LIMIT" drained ||
        die "$kind: the worker finished $(finished_by_worker) of $N within $LIMIT s"
    dump "$kind"
    SECS=$(elapsed "$t0")
    stop_worker
    # Outside the counted phase: every saga finished (index score >= 0) and
    # every start request acknowledged and deleted.
    [ "$(rcli zcount 'saga:{idx}:sagas' 0 +inf)" = "$N" ] ||
        die "$kind: $(rcli zcount 'saga:{idx}:sagas' 0 +inf) of $N sagas finished in the index"
    [ "$(rcli xlen 'saga:{idx}:intake')" = 0 ] ||
        die "$kind: $(rcli xlen 'saga:{idx}:intake') start requests left"
    record "$kind" "$SECS"
    stop_redis
}

ORDER=(floor)
run_floor
for i in "${!BUILDS[@]}"; do
    use "$i"
    run_engine
    ORDER+=("engine$SUFFIX")
done
for i in "${!BUILDS[@]}"; do
    use "$i"
    run_production
    ORDER+=("production$SUFFIX")
done
[ -n "${SAGA_INSTR_JSONL:-}" ] &&
    jq -c '. + {label: ("instructions-" + .kind)}' "$RAW" >>"$SAGA_INSTR_JSONL"

# ------------------------------------------------------------------------
# The Markdown section
# ------------------------------------------------------------------------
what_json=$(for f in "${!WHAT[@]}"; do printf '%s\t%s\n' "$f" "${WHAT[$f]}"; done |
            jq -Rn '[inputs | split("\t") | {key: .[0], value: .[1]}] | from_entries')
jq -rs --arg n "$N" --arg warm "$WARM" --arg c "$C" --arg wc "$WC" --argjson builds "${#BUILDS[@]}" \
    --arg redis "$(redis-server --version | awk '{print $3}' | sed 's/^v=//')" \
    --arg valgrind "$(valgrind --version)" \
    --argjson order "$(printf '%s\n' "${ORDER[@]}" | jq -R . | jq -s .)" \
    --argjson funcs "$(printf '%s\n' "${FUNCS[@]}" | jq -R . | jq -s .)" \
    --argjson what "$what_json" '
map({key: .kind, value: .}) | from_entries as $k
| $order as $order
| ($k.floor.instructions_per_saga) as $floor
| ($k.floor.instructions_per_saga_without_timers) as $floor_nt
# Any other *Command over 0.5 % of some run'"'"'s total, largest first (not
# the dispatch: processCommand, lookupCommand*).
| ([$order[] as $o | $k[$o] | .instructions_per_saga as $t | .functions_per_saga | to_entries[]
    | select((.key | test("Command$")) and (.key | test("^(processCommand|lookupCommand)") | not)
             and .value > 0.005 * $t)]
   | group_by(.key) | map({key: .[0].key, value: (map(.value) | max)})
   | map(select(.key as $f | $funcs | index($f) | not)) | sort_by(-.value) | map(.key)) as $extra
| def k: . / 100 | round / 10;
  def cell($o; $f): $k[$o].functions_per_saga[$f] // null | if . == null then "–" else k | tostring end;
  "## Redis instructions per saga (issue 21): protocol floor, engine and production path under callgrind\n",
  "Written by `bash scripts/bench.sh instructions` (bench/redis_instructions.sh): the instructions",
  "redis-server \($redis) executes per saga, counted by valgrind'"'"'s callgrind (\($valgrind)), for the",
  "three kinds of bench/round2.sh with \($n) 3-step noop sagas each (floor and engine \($c) in flight, the",
  "worker --concurrency \($wc)); **one Redis only** (the cluster is out of scope), a fresh server per",
  "run with round2'"'"'s configuration (unix socket, AOF everysec, no RDB, no AOF rewrite). The set-up runs",
  "before the counters are zeroed (the engine'"'"'s warm-up of \($warm) sagas that loads its library; the",
  "publisher worker and the submissions of the production path), the dump follows the last saga",
  "(the production run'"'"'s end read on the worker'"'"'s /metrics, not from Redis). Unlike sagas/s and Redis",
  "CPU on this shared machine, these counts are **deterministic**: identical runs agree within about",
  "1 %, so changes worth a few % of Redis'"'"'s cost can be judged. Instructions are not time (cache misses",
  "and syscalls are not weighed); round 2'"'"'s sagas/s and CPU remain the figures of record. Work done",
  "on timers (Redis'"'"'s serverCron; the worker'"'"'s scans, such as XAUTOCLAIM, and lease renewals) is",
  "counted per second of the run, which callgrind stretches many times over: it weighs more here than",
  "in a native run, and varies from run to run (one XAUTOCLAIM of the worker'"'"'s takeover scan costs",
  "about 17 million instructions when it falls within the measured phase), so \"without the timers\"",
  "(the total less serverCron and XAUTOCLAIM) is the figure to compare builds by.",
  "Thousands of instructions per saga; a function'"'"'s count is inclusive (what it calls included), so",
  "rows overlap. \"Of the floor\": the floor'"'"'s total over the run'"'"'s total" +
  (if $builds > 1 then " (two builds: the floor is the first one'"'"'s saga-floor, which does not use the engine)." else "." end) + "\n",
  "| per saga (k instructions) | what | " + ($order | join(" | ")) + " |",
  ([$order[] | "---"] | "|---|---|" + join("|") + "|"),
  "| **total** | everything redis-server executed | " + ($order | map("**\($k[.].instructions_per_saga | k)**") | join(" | ")) + " |",
  "| of the floor | floor total / run total | " + ($order | map("\($floor / $k[.].instructions_per_saga * 100 | round) %") | join(" | ")) + " |",
  "| **without the timers** | the total less serverCron and XAUTOCLAIM | " + ($order | map("**\($k[.].instructions_per_saga_without_timers | k)**") | join(" | ")) + " |",
  "| of the floor | the same, without the timers | " + ($order | map("\($floor_nt / $k[.].instructions_per_saga_without_timers * 100 | round) %") | join(" | ")) + " |",
  (($funcs + $extra)[] as $f
   | "| `\($f)` | \($what[$f] // ($f | sub("Command$"; "") | ascii_upcase)) | " + ($order | map(. as $o | cell($o; $f)) | join(" | ")) + " |"),
  "",
  "Time under callgrind per run (s): " + ($order | map("\(.) \($k[.].seconds_under_valgrind)") | join(", ")) + "."
' "$RAW"
