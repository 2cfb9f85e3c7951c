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
PORTS=()
SUBS=()
cleanup() {
    for s in "${SUBS[@]}"; do kill "$s" 2>/dev/null || true; done
    for p in "${PORTS[@]}"; do redis-cli -p "$p" shutdown nosave >/dev/null 2>&1 || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT

# A port p with p and p + 10000 (the cluster bus) free a moment ago: both
# below Linux's ephemeral range (32768-60999), where no client socket of
# another program takes them, and with no listener.
free_port() {
    local p
    for _ in $(seq 200); do
        p=$((20000 + RANDOM % 2700))
        if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null &&
           ! (exec 3<>/dev/tcp/127.0.0.1/$((p + 10000))) 2>/dev/null &&
           [[ " ${PORTS[*]} " != *" $p "* ]]; then
            echo "$p"; return
        fi
    done
    echo "cluster_bench: no free port pair" >&2; exit 1
}

node_start() { # port cluster(yes|no)
    local p=$1 dir=$TMP/n$1
    mkdir -p "$dir"
    redis-server --port "$p" --bind 127.0.0.1 --dir "$dir" --cluster-enabled "$2" \
        --cluster-config-file nodes.conf --cluster-node-timeout 2000 \
        --appendonly yes --appendfsync everysec --save '' --daemonize yes \
        --logfile "$dir/log" --pidfile "$dir/pid" >/dev/null
    PORTS+=("$p")
    for _ in $(seq 100); do redis-cli -p "$p" ping >/dev/null 2>&1 && return; sleep 0.05; done
    echo "cluster_bench: redis-server on $p did not start:" >&2
    tail -5 "$dir/log" >&2 || true
    exit 1
}

cpu_of() { redis-cli -p "$1" info cpu | tr -d '\r' |
           awk -F: '/^used_cpu_(sys|user):/ { s += $2 } END { printf "%.6f", s }'; }
cmds_of() { redis-cli -p "$1" info commandstats | tr -d '\r' |
            awk -F'[=,]' '/^cmdstat_/ { s += $2 } END { print s + 0 }'; }
role_of() { redis-cli -p "$1" info replication | tr -d '\r' | awk -F: '/^role:/ { print $2 }'; }

total_cpu() {
    local t=0 p
    for p in "${cl[@]}"; do
        t=$(awk -v a="$t" -v b="$(cpu_of "$p")" 'BEGIN { printf "%.6f", a + b }')
    done
    echo "$t"
}

cl=()
for _ in 1 2 3 4 5 6; do p=$(free_port); node_start "$p" yes; cl+=("$p"); done
addrs=(); for p in "${cl[@]}"; do addrs+=("127.0.0.1:$p"); done
redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes >"$TMP/create.log" 2>&1
for _ in $(seq 200); do
    ok=0
    for p in "${cl[@]}"; do
        redis-cli -p "$p" cluster info | grep -q 'cluster_state:ok' && ok=$((ok + 1))
    done
    [ "$ok" -eq 6 ] && break
    sleep 0.1
done
for _ in $(seq 200); do  # the replicas' first sync
    up=0
    for p in "${cl[@]}"; do
        redis-cli -p "$p" info replication | tr -d '\r' |
            grep -Eq '^(role:master|master_link_status:up)$' && up=$((up + 1))
    done
    [ "$up" -eq 6 ] && break
    sleep 0.1
done
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
