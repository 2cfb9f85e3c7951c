#!/usr/bin/env bash
# cluster_bench.sh BUILD_DIR -- 3-step sagas/s and Redis CPU per saga on one
# Redis against a loopback Redis Cluster (issue 20), printed as a Markdown
# section on stdout. Needs redis-server, redis-cli, jq.
#
# Scenarios (AOF everysec, `saga-bench` with 3 demo.noop steps, 500 in
# flight, SAGA_CLUSTER_BENCH_SAGAS sagas after a warm-up of a tenth):
#   1. one redis-server (not a cluster) on a loopback port;
#   2. a cluster of 3 primaries + 3 replicas on loopback, --min-replicas 0;
#   3. the same cluster, --min-replicas 1 (a WAIT per batch of answers).
# Per node: CPU (INFO cpu, user + sys) and commands (INFO commandstats)
# before and after the run; CPU per saga per node, the busiest node's share
# of the commands, and the total. On a 2-core machine more nodes cannot be
# faster: see docs/scaling.md for what the figures mean.
set -euo pipefail
BUILD=${1:?usage: cluster_bench.sh BUILD_DIR}
BENCH=$BUILD/bin/saga-bench
N=${SAGA_CLUSTER_BENCH_SAGAS:-20000}
TMP=$(mktemp -d /tmp/saga-cluster-bench.XXXXXX)
# shellcheck source=bench/cluster_nodes.sh
. "$(dirname "$0")/cluster_nodes.sh"
trap cluster_nodes_stop EXIT

# run LABEL URL MIN_REPLICAS NODE_PORTS...
run() {
    local label=$1 url=$2 minr=$3; shift 3
    local nodes=("$@") before_cpu=() before_cmd=() i
    for i in "${!nodes[@]}"; do
        before_cpu[$i]=$(cpu_of "${nodes[$i]}"); before_cmd[$i]=$(cmds_of "${nodes[$i]}")
    done
    "$BENCH" --store redis --redis "$url" --min-replicas "$minr" -n "$N" --warmup $((N / 10)) \
        -c 500 --label "$label" >"$TMP/out.json" 2>"$TMP/err.log" ||
        { cat "$TMP/err.log" >&2; exit 1; }
    local sps done
    sps=$(jq -r .sagas_per_s "$TMP/out.json")
    done=$(( N + N / 10 ))  # the nodes' counters include the warm-up
    local total_cpu=0 total_cmd=0 max_cmd=0 per_node=""
    for i in "${!nodes[@]}"; do
        local c m role
        c=$(awk -v a="$(cpu_of "${nodes[$i]}")" -v b="${before_cpu[$i]}" 'BEGIN { printf "%.6f", a - b }')
        m=$(( $(cmds_of "${nodes[$i]}") - ${before_cmd[$i]} ))
        role=$(role_of "${nodes[$i]}")
        total_cpu=$(awk -v a="$total_cpu" -v b="$c" 'BEGIN { printf "%.6f", a + b }')
        if [ "$role" = master ]; then  # replicas only apply what primaries did
            total_cmd=$((total_cmd + m))
            [ "$m" -gt "$max_cmd" ] && max_cmd=$m
        fi
        per_node+="$(awk -v c="$c" -v n="$done" 'BEGIN { printf "%.1f", c / n * 1e6 }')${role:0:1} "
    done
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$label" "$minr" "$sps" \
        "$(awk -v c="$total_cpu" -v n="$done" 'BEGIN { printf "%.1f", c / n * 1e6 }')" \
        "$per_node" \
        "$(awk -v m="$max_cmd" -v t="$total_cmd" 'BEGIN { printf "%.0f %%", t ? m / t * 100 : 0 }')" \
        "$(jq -r '.latency.end_to_end_ms.p99' "$TMP/out.json")"
}

echo "### Redis Cluster: one Redis against 3 primaries (+3 replicas), $(date -u +%Y-%m-%d), $(git -C "$(dirname "$0")" rev-parse --short HEAD 2>/dev/null || echo '?')"
echo
echo "Load average before: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores."
echo
echo "| setup | --min-replicas | sagas/s | Redis CPU µs/saga (all nodes) | per node µs/saga (p primary, s replica) | busiest primary's share of the primaries' commands | end-to-end p99 ms |"
echo "|---|---|---|---|---|---|---|"

p=$(free_port); node_start "$p" no
run "1 Redis" "redis://127.0.0.1:$p" 0 "$p"
redis-cli -p "$p" shutdown nosave >/dev/null 2>&1 || true
PORTS=()

cluster_start  # sets cl: the six nodes' ports
run "3 primaries + 3 replicas" "redis://127.0.0.1:${cl[0]}" 0 "${cl[@]}"
run "3 primaries + 3 replicas" "redis://127.0.0.1:${cl[0]}" 1 "${cl[@]}"
echo
echo "Load average after: $(cut -d' ' -f1-3 /proc/loadavg)."
