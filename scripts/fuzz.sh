#!/usr/bin/env bash
# Builds the definition loader's libFuzzer target in build-fuzz/ (clang,
# ASan + UBSan) and runs it.
#
#   scripts/fuzz.sh [SECONDS]      default 300
#
# Seed corpus: definitions/examples/ (read only); new inputs go to
# build-fuzz/corpus/. Crash, leak and timeout reproducers land in the
# repository root (crash-*, leak-*, timeout-*; git ignores them), the log
# in fuzz-definition.log. Exits non-zero when the fuzzer found anything.
set -euo pipefail

SECONDS_TO_RUN=${1:-300}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD="$ROOT/build-fuzz"

command -v clang >/dev/null 2>&1 || { echo "fuzz.sh: clang is required" >&2; exit 2; }

cmake -S "$ROOT" -B "$BUILD" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DSAGA_TESTS=ON -DSAGA_FUZZ=ON >/dev/null
cmake --build "$BUILD" --target fuzz_definition -j"$(nproc 2>/dev/null || echo 2)"

mkdir -p "$BUILD/corpus"
cd "$ROOT"
"$BUILD/bin/fuzz_definition" \
    -max_total_time="$SECONDS_TO_RUN" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
    -dict="$ROOT/tests/fuzz/definition.dict" \
    -artifact_prefix="$ROOT/" -print_final_stats=1 \
    "$BUILD/corpus" "$ROOT/definitions/examples" 2>&1 | tee "$ROOT/fuzz-definition.log"
