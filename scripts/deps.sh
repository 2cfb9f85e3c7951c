#!/usr/bin/env bash
# Installs, from Debian's packages, whatever building, testing and running
# saga needs and this machine lacks. Does nothing when all is there.
#
#   scripts/deps.sh [--fuzz]     --fuzz adds clang and its fuzzer runtime
set -euo pipefail

pkgs=(build-essential cmake pkg-config
      libyaml-dev libuv1-dev libhiredis-dev libjansson-dev libcurl4-openssl-dev libjemalloc-dev
      libh2o-dev
      libcriterion-dev redis-server redis-tools curl)
[ "${1:-}" = "--fuzz" ] && pkgs+=(clang libclang-rt-14-dev)

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || {
        echo "deps.sh: need root (or sudo) to install: ${missing[*]}" >&2
        exit 1
    }
    sudo=sudo
fi
echo "deps.sh: installing ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
