# shellcheck shell=bash
# shellcheck disable=SC2034  # the variables set here are the callers'
# builds.sh -- sourced by bench/round2.sh and bench/redis_instructions.sh:
# the builds an A/B run compares. The caller sets BUILDS (build
# directories, one or two) and NAMES (their names, "before after").
#
# builds_check WHO: sets FLOOR (the first build's saga-floor) and fails,
# naming WHO, when a binary of a build is missing.
builds_check() {
    FLOOR=${BUILDS[0]}/bin/saga-floor
    local B b
    for B in "${BUILDS[@]}"; do
        for b in "$B/bin/saga" "$B/bin/saga-bench" "$B/bin/saga-submit-bulk" "$FLOOR"; do
            [ -x "$b" ] || { echo "$1: $b is missing (build it first)" >&2; exit 1; }
        done
    done
}

# use BUILD_INDEX: the binaries of that build (SAGA, BENCH, SUBMIT), and the
# suffix of its kinds' names (SUFFIX: " (before)" with two builds, else "").
use() {
    SAGA=${BUILDS[$1]}/bin/saga
    BENCH=${BUILDS[$1]}/bin/saga-bench
    SUBMIT=${BUILDS[$1]}/bin/saga-submit-bulk
    SUFFIX=""
    [ "${#BUILDS[@]}" -gt 1 ] && SUFFIX=" (${NAMES[$1]:-$1})"
    return 0
}
