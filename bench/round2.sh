#!/usr/bin/env bash
# round2.sh BUILD_DIR [BUILD_DIR_B] -- issue 21's three measurements on one Redis or on a
# Redis Cluster, and the two ratios against the protocol floor, as a Markdown section on
# stdout (scripts/bench.sh appends both sections to bench/RESULTS.md; they run alone with
# `bash scripts/bench.sh round2`):
#   floor       saga-floor: 1,000 sagas in flight, 4 FCALLs per saga (HSET
#               of 3 fields + XADD of 2); one hiredis-async connection, on a
#               cluster one per primary (each saga's writes to its slot's)
#   production  N sagas pre-submitted (saga-submit-bulk: the operator API's
#               submit, as `saga submit`, so each request goes to its
#               shard), then one `saga worker --concurrency 1000` drains
#               them: from the worker's start to the last saga finished
#   engine      saga-bench --store redis -s 3 -c 1000 (in process)
# 3-step noop sagas; every run on a fresh redis-server (AOF everysec, no
# RDB, no AOF rewrite) or, with SAGA_ROUND2_TARGET=cluster, a fresh
# loopback cluster of 3 primaries + 3 replicas (bench/cluster_nodes.sh,
# AOF everysec); the kinds interleaved, SAGA_ROUND2_REPS rounds (default
# 3), each figure the median. Per saga, from the servers' own counters over
# the run: Redis CPU (INFO cpu; on a cluster summed over the six nodes, and
# per node), commands (INFO commandstats of the primaries, FCALL's inner
# calls included; on a cluster also the busiest primary's share) and AOF
# bytes (aof_current_size of the primaries).
# On a cluster the production path runs once per SAGA_ROUND2_MIN_REPLICAS
# (default "0 1": the worker's --min-replicas, empty: no production run;
# the engine runs with 0), and production and engine once per
# SAGA_ROUND2_SHARDS (e.g. "12 1": SAGA_SHARDS of every process of the run,
# the shards a fresh cluster records; default: the store's own default).
# With a second build (A/B: a change against its base), every round runs
# the floor, then production and engine of A then of B, and the section
# shows both, named by SAGA_ROUND2_NAMES ("before after" by default).
#   SAGA_ROUND2_SAGAS   sagas per run (default 100000)
#   SAGA_ROUND2_REPS    rounds (default 3)
#   SAGA_ROUND2_JSONL   also append each run's figures there (one JSON object each)
#   SAGA_ROUND2_TARGET  single (default) or cluster
set -euo pipefail
BUILDS=("${1:?usage: round2.sh BUILD_DIR [BUILD_DIR_B]}")
[ $# -ge 2 ] && BUILDS+=("$2")
read -r -a NAMES <<<"${SAGA_ROUND2_NAMES:-before after}"
N=${SAGA_ROUND2_SAGAS:-100000}
REPS=${SAGA_ROUND2_REPS:-3}
C=1000
TARGET=${SAGA_ROUND2_TARGET:-single}
case "$TARGET" in
    single) MINRS=(""); SHARDS=("") ;;
    cluster) read -r -a MINRS <<<"${SAGA_ROUND2_MIN_REPLICAS-0 1}"
             read -r -a SHARDS <<<"${SAGA_ROUND2_SHARDS:-}"
             [ "${#SHARDS[@]}" -gt 0 ] || SHARDS=("") ;;
    *) echo "round2.sh: SAGA_ROUND2_TARGET: expected single or cluster, got '$TARGET'" >&2; exit 2 ;;
esac
# shellcheck source=bench/builds.sh
. "$(dirname "$0")/builds.sh"
builds_check round2.sh
T=$(mktemp -d /tmp/saga-round2.XXXXXX)
RAW=$T/runs.jsonl
: >"$RAW"
REDIS_PID=""
WORKER_PID=""
TMP=$T/cluster  # cluster_nodes.sh's nodes live there
# shellcheck source=bench/cluster_nodes.sh
. "$(dirname "$0")/cluster_nodes.sh"
cleanup() {
    local rc=$?
    for p in $WORKER_PID $REDIS_PID; do
        kill -9 "$p" 2>/dev/null || true
        { wait "$p"; } 2>/dev/null || true
    done
    [ "${#PORTS[@]}" -gt 0 ] && cluster_nodes_stop
    rm -rf "$T"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

SOCK=$T/redis/redis.sock
# ncli NODE ARGS...: redis-cli on one node (a unix socket path or a port).
ncli() {
    local node=$1
    shift
    if [[ $node == /* ]]; then redis-cli -s "$node" "$@"; else redis-cli -p "$node" "$@"; fi
}
# gcli ARGS...: redis-cli for any key (following a cluster's redirections).
gcli() { if [ "$TARGET" = cluster ]; then ncli "${NODES[0]}" -c "$@"; else ncli "${NODES[0]}" "$@"; fi; }
start_redis() {
    rm -rf "$T/redis"
    mkdir -p "$T/redis"
    redis-server --port 0 --unixsocket "$SOCK" --unixsocketperm 700 --dir "$T/redis" \
        --appendonly yes --appendfsync everysec --save "" --auto-aof-rewrite-percentage 0 \
        --maxmemory-policy noeviction --logfile "$T/redis/redis.log" &
    REDIS_PID=$!
    for _ in $(seq 100); do
        ncli "$SOCK" ping >/dev/null 2>&1 && return 0
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
# start_target: a fresh redis-server or cluster; sets NODES (every node)
# and URL (what the clients are given).
start_target() {
    if [ "$TARGET" = single ]; then
        start_redis
        NODES=("$SOCK")
        URL="unix://$SOCK"
    else
        PORTS=()
        cluster_start  # sets cl: the six nodes' ports
        NODES=("${cl[@]}")
        URL="redis://127.0.0.1:${cl[0]}"
    fi
}
stop_target() {
    if [ "$TARGET" = single ]; then stop_redis; else cluster_nodes_stop; PORTS=(); fi
}
resetstat() { local n; for n in "${NODES[@]}"; do ncli "$n" config resetstat >/dev/null; done; }
# snap: the servers' counters as one JSON object {cpu (every node), aof,
# reads, cmds: {name: calls} (the primaries'), nodes: [{node, role, cpu,
# cmds}]} (a replica only applies what its primary did).
snap() {
    local n info
    for n in "${NODES[@]}"; do
        info=$(ncli "$n" info everything) || { echo "round2.sh: INFO failed on $n" >&2; exit 1; }
        echo "$info" | tr -d '\r' | awk -F'[:,=]' -v node="$n" '
            /^role:/ {role = $2}
            /^used_cpu_(sys|user):/ {cpu += $2}
            /^aof_current_size:/ {aof = $2}
            /^total_reads_processed:/ {reads = $2}
            /^cmdstat_/ {sub(/^cmdstat_/, "", $1); if ($1 != "info") {cmds = cmds sep "\"" $1 "\":" $3; sep = ","; total += $3}}
            END {printf "{\"node\":\"%s\",\"role\":\"%s\",\"cpu\":%s,\"aof\":%s,\"reads\":%s,\"total\":%s,\"cmds\":{%s}}\n",
                        node, role, cpu + 0, aof + 0, reads + 0, total + 0, cmds}'
    done | jq -sc '(map(select(.role == "master"))) as $p
        | {cpu: (map(.cpu) | add), aof: ($p | map(.aof) | add), reads: ($p | map(.reads) | add),
           cmds: (reduce ($p[].cmds | to_entries[]) as $e ({}; .[$e.key] += $e.value)),
           nodes: map({node, role, cpu, cmds: .total})}'
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
        --argjson a "$5" --argjson z "$6" --argjson ccpu "${7:-null}" \
        --argjson shards "$(shard_tags | wc -w)" '
        ($z.cmds | to_entries | map({key, value: ((.value - ($a.cmds[.key] // 0)) / $n)})
         | map(select(.value >= 0.005)) | from_entries) as $per
        | {kind: $kind, round: $round, sagas: $n, seconds: $s,
           sagas_per_s: (($n / $s) | floor),
           redis_cpu_us_per_saga: ((($z.cpu - $a.cpu) / $n * 1e7 | round) / 10),
           commands_per_saga: (([$per[]] | add) * 100 | round / 100),
           aof_bytes_per_saga: (($z.aof - $a.aof) / $n | round),
           client_cpu_us_per_saga: (if $ccpu == null then null else ($ccpu / $n * 1e7 | round) / 10 end),
           reads_per_saga: ((($z.reads - $a.reads) / $n * 100 | round) / 100),
           nodes: ([$z.nodes, $a.nodes] | transpose | map({role: .[0].role,
                     cpu_us_per_saga: (((.[0].cpu - .[1].cpu) / $n * 1e7 | round) / 10),
                     cmds: (.[0].cmds - .[1].cmds)})),
           commandstats_per_saga: ($per | map_values(. * 100 | round / 100))}
        | .busiest_share = (.nodes | map(select(.role == "master") | .cmds)
                            | if add > 0 then (max / add * 1000 | round) / 10 else null end)
        | .shards = (if $kind == "floor" then null else $shards end)' | tee -a "$RAW" |
        jq -r '"   round2 \(.kind) #\(.round): \(.sagas_per_s) sagas/s, Redis \(.redis_cpu_us_per_saga) us (\(.nodes | map(.cpu_us_per_saga) | join(" "))), \(.commands_per_saga) commands (busiest primary \(.busiest_share) %), \(.aof_bytes_per_saga) AOF bytes, \(.reads_per_saga) reads per saga"' >&2
}
now_ns() { date +%s%N; }

# with_shards K COMMAND...: COMMAND with SAGA_SHARDS=K (K empty: as is).
with_shards() {
    local k=$1
    shift
    if [ -n "$k" ]; then SAGA_SHARDS=$k "$@"; else "$@"; fi
}
# variant K [MIN_REPLICAS]: the part of a kind's name that says which
# variant of the cluster run it is (nothing on one Redis).
variant() {
    [ "$TARGET" = cluster ] || return 0
    [ -n "$1" ] && printf ' K=%s' "$1"
    [ -n "${2:-}" ] && printf ' min-replicas %s' "$2"
    return 0
}

run_floor() { # ROUND
    start_target
    local a z out
    resetstat
    a=$(snap)
    out=$("$FLOOR" --redis "$URL" -n "$N" -c "$C") ||
        { echo "round2.sh: saga-floor failed" >&2; exit 1; }
    z=$(snap)
    check_json saga-floor "$out"
    record floor "$1" "$N" "$(echo "$out" | jq .seconds)" "$a" "$z"
    stop_target
}

run_engine() { # ROUND SHARDS
    start_target
    local a z out
    # Any command that opens the store records the shards on a fresh
    # cluster: saga-bench then uses those.
    [ -n "$2" ] && { with_shards "$2" "$SAGA" list --redis "$URL" --limit 1 >/dev/null ||
                     { echo "round2.sh: saga list failed" >&2; exit 1; }; }
    resetstat
    a=$(snap)
    out=$("$BENCH" --store redis --redis "$URL" --min-replicas 0 -s 3 -c "$C" -n "$N" --warmup 0 \
          --max-seconds 600) || { echo "round2.sh: saga-bench failed" >&2; exit 1; }
    z=$(snap)
    check_json saga-bench "$out"
    record "engine$(variant "$2")$SUFFIX" "$1" "$(echo "$out" | jq .sagas)" \
        "$(echo "$out" | jq .elapsed_s)" "$a" "$z" "$(echo "$out" | jq .cpu_s)"
    stop_target
}

mkdir -p "$T/defs"
cp "$(dirname "$0")/round2.yaml" "$T/defs/round2.yaml"
start_worker() { # NAME SHARDS [MIN_REPLICAS]
    local minr=() shards=()
    [ -n "${3:-}" ] && minr=(--min-replicas "$3")
    [ -n "$2" ] && shards=("SAGA_SHARDS=$2")
    # env execs the worker: WORKER_PID is the worker's own.
    env "${shards[@]}" SAGA_LOG=warn "$SAGA" worker --redis "$URL" --defs "$T/defs" \
        --concurrency "$C" --name "$1" "${minr[@]}" >>"$T/worker.log" 2>&1 &
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
# The definitions workers publish live in the {idx} slot, not sharded.
has_def() { [ -n "$(gcli hget 'saga:{idx}:defs' bench_round2)" ]; }
# The shards' tags (store/shards.h: recorded in saga:{idx}:shards on a
# cluster; one shard "idx" on a single Redis).
shard_tags() {
    local t
    t=$(gcli get 'saga:{idx}:shards' 2>/dev/null) || t=""
    echo "${t:-idx}"
}
# shard_map: SHARD_AT[node] = the tags of the shards whose keys that
# primary holds, so that a count over every shard asks each node once.
declare -A SHARD_AT
shard_map() {
    local t slot node
    SHARD_AT=()
    for t in $(shard_tags); do
        node=${NODES[0]}
        if [ "$TARGET" = cluster ]; then
            slot=$(gcli cluster keyslot "saga:{$t}:sagas")
            node=$(gcli cluster nodes | awk -v s="$slot" '$3 ~ /master/ {
                split($2, a, "[:@]")
                for (i = 9; i <= NF; i++) {
                    if ($i ~ /^\[/) continue
                    n = split($i, r, "-"); lo = r[1]; hi = n > 1 ? r[2] : r[1]
                    if (s + 0 >= lo + 0 && s + 0 <= hi + 0) print a[2]
                } }')
            [ -n "$node" ] || { echo "round2.sh: no primary holds slot $slot" >&2; exit 1; }
        fi
        SHARD_AT[$node]+="$t "
    done
}
# over_shards KEY_NAME COMMAND [ARGS]: COMMAND on every shard's key
# saga:{TAG}:KEY_NAME, the integer answers summed.
over_shards() {
    local node t
    for node in "${!SHARD_AT[@]}"; do
        for t in ${SHARD_AT[$node]}; do printf '%s saga:{%s}:%s %s\n' "$2" "$t" "$1" "${*:3}"; done |
            ncli "$node"
    done | awk '{s += $1} END {print s + 0}'
}
# Finished sagas have an index score >= 0 (docs/redis-layout.md).
finished() { over_shards sagas zcount 0 +inf; }
all_finished() { [ "$(finished)" = "$N" ]; }
# server_ms: the first node's clock (TIME), in ms.
server_ms() { ncli "${NODES[0]}" time | awk 'NR == 1 {s = $1} NR == 2 {printf "%.0f\n", s * 1000 + int($1 / 1000)}'; }
# last_finish_ms: when the last saga finished, in ms: the greatest
# `updated` of the sagas that finished last in each shard (the index score
# of a finished saga is its finish time plus its retention, so the highest
# score of a shard is its last finish; every saga of this run has the same
# retention). On one machine the engine's clock and the server's agree.
last_finish_ms() {
    local node t id best=0 u
    for node in "${!SHARD_AT[@]}"; do
        for t in ${SHARD_AT[$node]}; do
            id=$(ncli "$node" zrange "saga:{$t}:sagas" -1 -1 | head -1)
            [ -n "$id" ] || continue
            u=$(gcli hget "saga:{$id}" updated)
            [ -n "$u" ] && [ "$u" -gt "$best" ] && best=$u
        done
    done
    echo "$best"
}
# wait_finished SECONDS: until every saga finished. Polled every 200 ms,
# not faster: the poll forks redis-cli and awk, and on a 2-core machine
# every fork takes CPU from the worker and Redis it measures (polling every
# 10 ms cost the production path about a quarter of its sagas/s); the end
# time is read from the sagas themselves (last_finish_ms), not from when
# the poll saw it.
wait_finished() {
    local deadline=$(( $(now_ns) + $1 * 1000000000 ))
    until all_finished; do
        [ "$(now_ns)" -gt "$deadline" ] && return 1
        sleep 0.2
    done
}

run_production() { # ROUND SHARDS [MIN_REPLICAS]
    start_target
    # A first worker publishes the definition, then stops: the submissions
    # name its hash, as `saga submit` does.
    start_worker publisher "$2" "${3:-}"
    wait_until 30 has_def || { echo "round2.sh: the worker did not publish" >&2; exit 1; }
    stop_worker
    local a z t0 t1
    with_shards "$2" "$SUBMIT" --redis "$URL" --name bench_round2 -n "$N" -c "$C" >/dev/null ||
        { echo "round2.sh: saga-submit-bulk failed" >&2; exit 1; }
    shard_map
    [ "$(over_shards intake xlen)" = "$N" ] ||
        { echo "round2.sh: $(over_shards intake xlen) of $N submitted" >&2; exit 1; }
    resetstat
    a=$(snap)
    t0=$(server_ms)
    start_worker drainer "$2" "${3:-}"
    wait_finished 600 ||
        { echo "round2.sh: the worker finished $(finished) of $N" >&2; exit 1; }
    z=$(snap)
    t1=$(last_finish_ms)
    [ "$t1" -gt "$t0" ] || { echo "round2.sh: no finish time after the start ($t0, $t1)" >&2; exit 1; }
    # The worker's CPU (user + system, clock ticks in /proc/PID/stat).
    local ccpu
    ccpu=$(awk -v hz="$(getconf CLK_TCK)" '{sub(/^.*\) /, ""); print ($12 + $13) / hz}' \
           "/proc/$WORKER_PID/stat")
    stop_worker
    # The run left nothing behind: every request acknowledged and deleted.
    [ "$(over_shards intake xlen)" = 0 ] ||
        { echo "round2.sh: $(over_shards intake xlen) start requests left" >&2; exit 1; }
    record "production$(variant "$2" "${3:-}")$SUFFIX" "$1" "$N" \
        "$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", (b - a) / 1e3}')" "$a" "$z" "$ccpu"
    stop_target
}

for r in $(seq "$REPS"); do
    run_floor "$r"
    for k in "${SHARDS[@]}"; do
        for m in "${MINRS[@]}"; do
            for i in "${!BUILDS[@]}"; do
                use "$i"
                run_production "$r" "$k" "$m"
            done
        done
        for i in "${!BUILDS[@]}"; do
            use "$i"
            run_engine "$r" "$k"
        done
    done
done
[ -n "${SAGA_ROUND2_JSONL:-}" ] && jq -c '. + {label: ("round2-" + .kind + ".run" + (.round | tostring))}' \
    "$RAW" >>"$SAGA_ROUND2_JSONL"

# ------------------------------------------------------------------------
# The Markdown section
# ------------------------------------------------------------------------
ORDER=(floor)
for k in "${SHARDS[@]}"; do
    for m in "${MINRS[@]}"; do
        for i in "${!BUILDS[@]}"; do use "$i"; ORDER+=("production$(variant "$k" "$m")$SUFFIX"); done
    done
    for i in "${!BUILDS[@]}"; do use "$i"; ORDER+=("engine$(variant "$k")$SUFFIX"); done
done
jq -rs --arg n "$N" --arg reps "$REPS" --arg target "$TARGET" \
    --argjson order "$(printf '%s\n' "${ORDER[@]}" | jq -R . | jq -s .)" \
    --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" '
def med(f): (map(f) | sort) as $s | $s[(($s | length) - 1) / 2 | floor];
def fmt: tostring | if test("^[0-9]{4,}$") then (. as $x | [range(($x | length); 0; -3)] | reverse
         | map($x[(if . - 3 < 0 then 0 else . - 3 end):.]) | join(",")) else . end;
# The nodes of a run, primaries first, each role by CPU (busiest first).
def ranked: .nodes | sort_by(.role != "master", -.cpu_us_per_saga);
# The CPU per saga of the run'"'"'s busiest node: with a core per node, what bounds it.
def busiest_cpu: .nodes | map(.cpu_us_per_saga) | max;
group_by(.kind) | map({key: .[0].kind, value: .}) | from_entries as $k
| $order as $order
| ($k.floor | med(.sagas_per_s)) as $floor
| if $target == "single" then
  "## Throughput round 2 (issue 21): production path and engine against the protocol floor\n",
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
   | "| \($o) | \($r | med(.sagas_per_s) | fmt) | \(($r | med(.sagas_per_s)) / $floor * 100 | round) % | \($r | med(.redis_cpu_us_per_saga)) | \($r | med(.commands_per_saga)) | \($r | med(.aof_bytes_per_saga) | fmt) | \($r | med(.reads_per_saga)) | \($r | med(.client_cpu_us_per_saga) // "–") | \($r | map(.sagas_per_s | fmt) | join(" · ")) |")
  else
  "## Throughput round 2 (issue 21), Redis Cluster: production path and engine against the protocol floor on the same cluster\n",
  "Written by `bash scripts/bench.sh round2` (bench/round2.sh, SAGA_ROUND2_TARGET=cluster): \($n) 3-step",
  "noop sagas per run, 1,000 in flight, a fresh loopback cluster per run (3 primaries + 3 replicas,",
  "AOF everysec on every node), the kinds interleaved, \($reps) rounds; each figure is the median of the",
  "rounds (every run in the last column). The floor sends each saga'"'"'s 4 FCALLs to the primary of its",
  "hash tag'"'"'s slot, one connection per primary; production and engine run with `--min-replicas` as",
  "named (the engine with 0), K = the shards of the global keys the cluster recorded. Taken on a",
  "**shared machine** (2 cores for 6 nodes and the client, other engineers building; load average",
  "\($load) at the end): the ratios, CPU and commands per saga are the stable figures, absolute",
  "sagas/s vary with the load. Per saga, from the nodes'"'"' counters over the run: Redis CPU (INFO cpu)",
  "summed over the six nodes and per node (p: primary, r: replica; each role busiest first),",
  "commands (INFO commandstats of the primaries, FCALL'"'"'s inner calls included), the busiest",
  "primary'"'"'s share of the primaries'"'"' commands, AOF bytes (the primaries'"'"'), and the client'"'"'s CPU.",
  "\"Of the floor by the busiest node'"'"'s CPU\": the CPU per saga of the floor'"'"'s busiest node over that of",
  "the run'"'"'s busiest node (medians): the ratio a deployment with a core per node would see when its",
  "busiest node'"'"'s CPU bounds it; far less sensitive to this machine'"'"'s load than sagas/s.\n",
  "| run | K | sagas/s | of the floor | Redis CPU µs / saga, all nodes | per node | of the floor by the busiest node'"'"'s CPU | commands / saga | busiest primary | AOF bytes / saga | client CPU µs / saga | sagas/s of each run |",
  "|---|---|---|---|---|---|---|---|---|---|---|---|",
  ($order[] as $o | $k[$o] as $r
   | "| \($o) | \($r[0].shards // "–") | \($r | med(.sagas_per_s) | fmt) | \(($r | med(.sagas_per_s)) / $floor * 100 | round) % | \($r | med(.redis_cpu_us_per_saga)) | \([range(0; ($r[0].nodes | length))] | map(. as $i | ($r[0] | ranked)[$i].role[0:1] | if . == "m" then "p" else "r" end) as $roles | [range(0; ($roles | length))] | map(. as $i | "\($roles[$i]) \($r | med(ranked[$i].cpu_us_per_saga))") | join(" · ")) | \(($k.floor | med(busiest_cpu)) / ($r | med(busiest_cpu)) * 100 | round) % | \($r | med(.commands_per_saga)) | \($r | med(.busiest_share)) % | \($r | med(.aof_bytes_per_saga) | fmt) | \($r | med(.client_cpu_us_per_saga) // "–") | \($r | map(.sagas_per_s | fmt) | join(" · ")) |")
  end,
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
