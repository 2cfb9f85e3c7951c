#!/usr/bin/env bash
# The main job, from a fresh Debian 12 machine: installs what is missing,
# builds saga, and runs example sagas end to end with the default store (a
# private redis-server in ./.saga, started and stopped by saga itself).
#
#   order         completes: order -> stock -> payment -> notification
#   trip_booking  a step fails for good: the started steps are compensated,
#                 newest first
#
# Exits 0 when each saga ended as its example says it should.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc 2>/dev/null || echo 2)" --target saga plugin_demo >/dev/null

run() { # expected-exit file input
    local want=$1 file=$2 input=$3 got=0
    echo
    echo "\$ build/bin/saga run $file --input '$input'"
    build/bin/saga run "$file" --input "$input" || got=$?
    if [ "$got" -ne "$want" ]; then
        echo "run-example.sh: $file exited $got, expected $want" >&2
        exit 1
    fi
}

run 0 definitions/examples/order.yaml \
    '{"order_id": "O-42", "customer": "c-7", "items": [{"sku": "book-1", "qty": 2}], "amount": 3990}'
run 3 definitions/examples/trip-booking.yaml \
    '{"trip_id": "T-1001", "traveller": "Ada", "city": "Lisbon"}'
echo
echo "Both sagas ended as designed (exit 0: completed, 3: compensated)."
echo "Their checkpoints are in ./.saga; see docs/ for more."
