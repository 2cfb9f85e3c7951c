#!/usr/bin/env bash
# Installs, from Debian's packages, whatever building, testing and running
# saga needs and this machine lacks. Does nothing when all is there.
#
#   scripts/deps.sh [--tests] [--bench] [--fuzz]
#     --tests   what only the test suite needs (prometheus, for promtool;
#               postgresql, the server the outbox relay's tests start;
#               chromium, node and npm for the console's browser tests, and
#               then `npm ci` in tests/console: playwright-core, pinned)
#     --bench   what only the benchmarks need (wrk, jq, gnuplot-nox;
#               postgresql, for the outbox relay's; valgrind, for the
#               instructions Redis executes per saga)
#     --fuzz    clang and its fuzzer runtime
#
# `prometheus` is there for its promtool (tests/http/test_worker_metrics.c
# runs `promtool check metrics`); its server is never started: its postinst
# runs `invoke-rc.d prometheus start`, which in a container without systemd
# would start the daemon from /etc/init.d (or fail the install when it
# cannot start), so the install runs under a policy-rc.d that denies every
# start (exit 101), and on a host run by systemd the unit it enables is
# disabled again. `postgresql` is the same: its postinst would create and
# start a cluster service; the tests start their own servers (initdb in a
# temp dir, as the `postgres` user the package creates).
set -euo pipefail

pkgs=(build-essential cmake pkg-config
      libyaml-dev libuv1-dev libhiredis-dev libjansson-dev libcurl4-openssl-dev libjemalloc-dev
      libh2o-dev libpq-dev
      libcriterion-dev redis-server redis-tools curl)
for arg in "$@"; do
    case $arg in
    --tests) pkgs+=(prometheus postgresql chromium); tests=1 ;;
    --bench) pkgs+=(wrk jq gnuplot-nox postgresql valgrind) ;;
    --fuzz) pkgs+=(clang libclang-rt-14-dev) ;;
    *) echo "deps.sh: unknown option '$arg' (--tests, --bench, --fuzz)" >&2; exit 2 ;;
    esac
done

# The console's browser tests (tests/console) drive Debian's chromium with
# playwright-core from npm. Node and npm by command, not by package: a
# nodejs from elsewhere (NodeSource's carries its own npm and conflicts
# with Debian's npm package) serves as well as Debian's 18.x.
if [ "${tests:-0}" = 1 ]; then
    command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
    command -v npm >/dev/null 2>&1 || pkgs+=(npm)
fi
# playwright-core exactly as tests/console/package-lock.json pins it (no
# browser download: the tests use /usr/bin/chromium); skipped when the
# installed tree already matches.
console_modules() {
    [ "${tests:-0}" = 1 ] || return 0
    local dir
    dir="$(cd "$(dirname "$0")/.." && pwd)/tests/console"
    (cd "$dir" && npm ls --silent >/dev/null 2>&1) && return 0
    echo "deps.sh: npm ci in tests/console (playwright-core)" >&2
    (cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
}

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && { console_modules; exit 0; }

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || {
        echo "deps.sh: need root (or sudo) to install: ${missing[*]}" >&2
        exit 1
    }
    sudo=sudo
fi
echo "deps.sh: installing ${missing[*]}" >&2

# No service starts during the install (see the top); a policy-rc.d that
# is there already (Docker images have one) is left as it is.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# deps.sh: no service starts while saga installs its packages\nexit 101\n' |
        $sudo tee "$policy" >/dev/null
    $sudo chmod 755 "$policy"
    trap '$sudo rm -f "$policy"' EXIT
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
if [[ " ${missing[*]} " == *" prometheus "* ]] && [ -d /run/systemd/system ]; then
    $sudo systemctl disable prometheus.service >/dev/null 2>&1 || true
fi
if [[ " ${missing[*]} " == *" postgresql "* ]] && [ -d /run/systemd/system ]; then
    $sudo systemctl disable postgresql.service >/dev/null 2>&1 || true
fi
console_modules
