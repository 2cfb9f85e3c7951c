#!/usr/bin/env bash
# compare.sh OLD_SAGA_BENCH NEW_SAGA_BENCH [ROUNDS] -- two builds of
# saga-bench, interleaved on the same host in the same minutes: the memory
# store at c=100 and Redis (AOF everysec, one fresh server) at c=500, ROUNDS
# times each (default 4). What tells a change of the engine from a change of
# the host, whose speed varies by the hour (docs/benchmarks.md).
set -euo pipefail
OLD=${1:?usage: compare.sh OLD_SAGA_BENCH NEW_SAGA_BENCH [ROUNDS]}
NEW=${2:?usage: compare.sh OLD_SAGA_BENCH NEW_SAGA_BENCH [ROUNDS]}
ROUNDS=${3:-4}
T=$(mktemp -d /tmp/saga-compare.XXXXXX)
trap 'redis-cli -s "$T/sock" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$T"' EXIT
redis-server --port 0 --unixsocket "$T/sock" --dir "$T" --appendonly yes --appendfsync everysec \
    --save '' --daemonize yes --logfile "$T/log" >/dev/null
for _ in $(seq 100); do redis-cli -s "$T/sock" ping >/dev/null 2>&1 && break; sleep 0.05; done
echo "round build mem-c100-sagas/s everysec-c500-sagas/s"
for i in $(seq "$ROUNDS"); do
    for v in OLD NEW; do
        b=${!v}
        m=$("$b" --store memory -s 3 -c 100 -n 3000000 --duration 4 --warmup 20000 | jq -r .sagas_per_s)
        redis-cli -s "$T/sock" flushall >/dev/null
        r=$("$b" --store redis --redis "unix://$T/sock" -s 3 -c 500 -n 2000000 --duration 5 \
            --warmup 5000 | jq -r .sagas_per_s)
        echo "$i $v $m $r"
    done
done
