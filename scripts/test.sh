#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: installs what is
# missing, builds, runs every suite, then builds and runs them all again
# under AddressSanitizer + UndefinedBehaviorSanitizer (a leak or any
# undefined behaviour fails the run). Ends with the CTest summaries of
# both runs, also when a suite failed (the exit status is then 1).
#
#   scripts/test.sh            both runs
#   SAGA_SKIP_ASAN=1 scripts/test.sh   the normal run only
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh --tests

jobs=$(nproc 2>/dev/null || echo 2)
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

run_suite() { # name build-dir cmake-args...
    local name=$1 dir=$2
    shift 2
    echo "== $name: build ($dir)"
    cmake -S . -B "$dir" "$@" >/dev/null
    cmake --build "$dir" -j"$jobs"
    echo "== $name: test"
    # a failing suite does not stop the script: the other run still runs,
    # the summaries are printed, and the exit status says it failed
    (cd "$dir" && ctest --output-on-failure --timeout 1200 -j2) | tee "$logs/$name.log" ||
        failed=1
}

failed=0

run_suite release build -DCMAKE_BUILD_TYPE=RelWithDebInfo
if [ -z "${SAGA_SKIP_ASAN:-}" ]; then
    run_suite asan+ubsan build-asan -DCMAKE_BUILD_TYPE=Debug -DSAGA_SANITIZE=ON
fi

echo
for f in "$logs"/*.log; do
    printf '%-12s ' "$(basename "$f" .log):"
    grep -E 'tests passed|tests failed out of' "$f" | tail -n 1
done
exit "$failed"
