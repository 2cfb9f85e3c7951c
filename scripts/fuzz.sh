#!/usr/bin/env bash
# Builds the libFuzzer targets in build-fuzz/ (clang, ASan + UBSan) and runs
# them one after the other, one process each:
#
#   fuzz_definition  the definition loader      seeds definitions/examples/
#   fuzz_record      what is read from Redis    seeds tests/fuzz/record-seeds/
#                    (records, history entries, summaries)
#   fuzz_http        saga serve's routing,      seeds tests/fuzz/http-seeds/
#                    queries, submit bodies and the console's If-None-Match
#   fuzz_relay_row   an outbox row as saga      seeds tests/fuzz/relay-row-seeds/
#                    relay reads it
#   fuzz_redis_reply Redis replies other        seeds tests/fuzz/redis-reply-seeds/
#                    programs decide: CLUSTER
#                    SLOTS, MOVED/ASK, the
#                    intake stream's entries
#
#   scripts/fuzz.sh [SECONDS [TARGET...]]   SECONDS per target, default 300;
#                                           TARGET: definition, record, http, relay_row,
#                                           redis_reply (all)
#
# Seed directories are read only; new inputs go to build-fuzz/corpus/
# (definitions) and build-fuzz/corpus-record/. Crash, leak and timeout
# reproducers land in the repository root (crash-*, leak-*, timeout-*; git
# ignores them), the logs in fuzz-definition.log and fuzz-record.log. A
# target that finds something does not stop the next one from running.
# Exits non-zero when any fuzzer found anything.
set -euo pipefail

SECONDS_TO_RUN=${1:-300}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(definition record http relay_row redis_reply)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD="$ROOT/build-fuzz"

command -v clang >/dev/null 2>&1 || { echo "fuzz.sh: clang is required" >&2; exit 2; }

# Per target: where its corpus grows, and its seeds (its dictionary is
# tests/fuzz/TARGET.dict).
declare -A CORPUS=([definition]="$BUILD/corpus" [record]="$BUILD/corpus-record" [http]="$BUILD/corpus-http" [relay_row]="$BUILD/corpus-relay-row" [redis_reply]="$BUILD/corpus-redis-reply")
declare -A SEEDS=([definition]="$ROOT/definitions/examples" [record]="$ROOT/tests/fuzz/record-seeds" [http]="$ROOT/tests/fuzz/http-seeds" [relay_row]="$ROOT/tests/fuzz/relay-row-seeds" [redis_reply]="$ROOT/tests/fuzz/redis-reply-seeds")
for t in "${TARGETS[@]}"; do
    [ -n "${SEEDS[$t]:-}" ] || { echo "fuzz.sh: unknown target '$t' (definition, record, http, relay_row, redis_reply)" >&2; exit 2; }
done

cmake -S "$ROOT" -B "$BUILD" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DSAGA_TESTS=ON -DSAGA_FUZZ=ON >/dev/null
cmake --build "$BUILD" --target "${TARGETS[@]/#/fuzz_}" -j"$(nproc 2>/dev/null || echo 2)"

cd "$ROOT"
status=0
for t in "${TARGETS[@]}"; do
    mkdir -p "${CORPUS[$t]}"
    "$BUILD/bin/fuzz_$t" \
        -max_total_time="$SECONDS_TO_RUN" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
        -dict="$ROOT/tests/fuzz/$t.dict" \
        -artifact_prefix="$ROOT/" -print_final_stats=1 \
        "${CORPUS[$t]}" "${SEEDS[$t]}" 2>&1 | tee "$ROOT/fuzz-$t.log" || status=1
done
exit $status
