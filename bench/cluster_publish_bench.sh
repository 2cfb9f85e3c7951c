#!/usr/bin/env bash
# cluster_publish_bench.sh -- what a settlement's message costs a loopback
# Redis Cluster (3 primaries + 3 replicas): the CPU time (INFO cpu) of all
# six nodes per message for PUBLISH saga:{idx}:settled (forwarded to every
# node over the cluster bus: what saga_write sends), SPUBLISH on a shard
# channel (stays within the shard) and a plain HSET for reference, with and
# without subscribers; redis-benchmark -P 16 -c 4, SAGA_PUBLISH_BENCH_N
# messages per run, three rounds. Printed as Markdown on stdout; the
# figures are in docs/redis-layout.md ("On Redis Cluster"). Needs
# redis-server, redis-cli, redis-benchmark.
set -euo pipefail
M=${SAGA_PUBLISH_BENCH_N:-200000}
TMP=$(mktemp -d /tmp/saga-publish-bench.XXXXXX)
SUBS=()
# shellcheck source=bench/cluster_nodes.sh
. "$(dirname "$0")/cluster_nodes.sh"
cleanup() {
    for s in "${SUBS[@]}"; do kill "$s" 2>/dev/null || true; done
    SAGA_BENCH_KEEP='' cluster_nodes_stop
}
trap cleanup EXIT

total_cpu() {
    local t=0 p
    for p in "${cl[@]}"; do
        t=$(awk -v a="$t" -v b="$(cpu_of "$p")" 'BEGIN { printf "%.6f", a + b }')
    done
    echo "$t"
}

cluster_start  # sets cl: the six nodes' ports
# the primary serving the slot of {b-1} (SPUBLISH and HSET go there)
sp=""
for p in "${cl[@]}"; do
    [ "$(role_of "$p")" = master ] && redis-cli -p "$p" set 'x{b-1}' 1 2>/dev/null | grep -q OK && sp=$p
done
redis-cli -p "$sp" del 'x{b-1}' >/dev/null
measure() { # label port command...
    local label=$1 port=$2 b a; shift 2
    b=$(total_cpu)
    redis-benchmark -p "$port" -n "$M" -P 16 -c 4 -q "$@" >/dev/null
    a=$(total_cpu)
    printf '| %s | %s | %s |\n' "$label" "$subs" \
        "$(awk -v a="$a" -v b="$b" -v m="$M" 'BEGIN { printf "%.2f", (a - b) / m * 1e6 }')"
}
echo "### A settlement's message on a loopback Redis Cluster, $(date -u +%Y-%m-%d)"
echo
echo "Load average before: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores."
echo
echo "| command | subscribers | CPU µs per message, all 6 nodes |"
echo "|---|---|---|"
for subs in 0 1; do
    if [ "$subs" = 1 ]; then  # one subscriber per channel, on another node
        redis-cli -p "${cl[4]}" subscribe 'saga:{idx}:settled' >/dev/null & SUBS+=($!)
        redis-cli -p "$sp" ssubscribe 'saga:{b-1}:settled' >/dev/null & SUBS+=($!)
        sleep 0.5
    fi
    for _ in 1 2 3; do
        measure PUBLISH "${cl[0]}" PUBLISH 'saga:{idx}:settled' b-1
        measure SPUBLISH "$sp" SPUBLISH 'saga:{b-1}:settled' b-1
        measure "HSET (reference)" "$sp" HSET 'h{b-1}' f v
    done
done
echo
echo "Load average after: $(cut -d' ' -f1-3 /proc/loadavg)."
