# cluster_nodes.sh -- sourced by bench/cluster_bench.sh and
# bench/cluster_publish_bench.sh: loopback redis-server nodes for a
# benchmark (free port pairs, start, stop) and what they report.
# The sourcing script sets TMP (a temp dir) first and calls
# cluster_nodes_stop from its EXIT trap.
NODE_TOOL=${0##*/}
PORTS=()

# Shuts every node started here down; removes TMP unless SAGA_BENCH_KEEP.
cluster_nodes_stop() {
    local p
    for p in "${PORTS[@]}"; do redis-cli -p "$p" shutdown nosave >/dev/null 2>&1 || true; done
    [ -n "${SAGA_BENCH_KEEP:-}" ] || rm -rf "$TMP"
}

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
    echo "$NODE_TOOL: no free port pair" >&2; exit 1
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
    echo "$NODE_TOOL: redis-server on $p did not start:" >&2
    tail -5 "$dir/log" >&2 || true
    exit 1
}

cpu_of() { redis-cli -p "$1" info cpu | tr -d '\r' |
           awk -F: '/^used_cpu_(sys|user):/ { s += $2 } END { printf "%.6f", s }'; }
cmds_of() { redis-cli -p "$1" info commandstats | tr -d '\r' |
            awk -F'[=,]' '/^cmdstat_/ { s += $2 } END { print s + 0 }'; }
role_of() { redis-cli -p "$1" info replication | tr -d '\r' | awk -F: '/^role:/ { print $2 }'; }

# Starts a cluster of 3 primaries + 3 replicas on free ports and waits
# until every node says cluster_state:ok and every replica has synced;
# sets the array cl to the six nodes' ports.
cluster_start() {
    local p ok up
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
}
