#!/usr/bin/env bash
# check_layers.sh SOURCE_DIR -- fails when a file includes a header of a
# layer above its own (docs/architecture.md, "The dependency rule").
#
# Engine layers, lowest first; a file may include headers of its own layer
# and of the layers below it:
#   util < redis = postgres < store < core < worker < http = relay < cli
# Public headers (engine/include/saga/) count as the layer that implements
# them. definitions/ and steps/ sit below the engine and include nothing of
# it; plugins include the plugin ABI and the steps/lib helpers only, never
# the host side (steps/host/plugin_loader.h, the engine's loader).
# A private header (*_internal.h) is included only inside its own folder,
# and by the tests listed in INTERNAL_OK, each with its reason.
set -uo pipefail
src=${1:?usage: check_layers.sh SOURCE_DIR}
cd "$src" || exit 2

declare -A rank=([util]=0 [redis]=1 [postgres]=1 [store]=2 [core]=3 [worker]=4 [http]=5
                [relay]=5 [cli]=6)
# Public headers: the layer that implements each.
declare -A public=([saga/errors.h]=util [saga/state.h]=store [saga/store.h]=store
                   [saga/engine.h]=core [saga/worker.h]=worker)
# Headers of definitions/ and steps/ the engine may use (below every layer).
declare -A external=([saga/definition.h]=1 [saga/plugin.h]=1 [plugin_loader.h]=1)
# Tests allowed a private header: "test-file:header" (with why).
INTERNAL_OK=(
    # checkpoint decoding of a saga_inst_t is what this suite tests
    "tests/engine/test_checkpoint.c:core/engine_internal.h"
    # the record fuzzer drives the same decoder
    "tests/fuzz/fuzz_record.c:core/engine_internal.h"
)

bad=0
fail() { echo "$1: $2" >&2; bad=1; }

# The layer of a header named in an #include "..." line, or "" if unknown.
header_layer() {
    local h=$1
    if [ -n "${public[$h]:-}" ]; then echo "${public[$h]}"; return; fi
    local dir=${h%%/*}
    if [ "$dir" != "$h" ] && [ -n "${rank[$dir]:-}" ] && [ -f "engine/$h" ]; then
        echo "$dir"; return
    fi
    echo ""
}

includes() { grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$1" |
             sed -E 's/^([0-9]+):[^"]*"([^"]+)".*/\1 \2/'; }

# ---- engine/: every quoted include resolves, none goes up a layer.
while IFS= read -r f; do
    rel=${f#engine/}
    layer=${rel%%/*}
    [ "$layer" = include ] && layer=${public[${rel#include/}]:-}
    [ -z "$layer" ] && { fail "$f" "not in a known layer (engine/{util,redis,postgres,store,core,worker,http,relay,cli,include})"; continue; }
    while read -r line h; do
        [ -z "$h" ] && continue
        [ -n "${external[$h]:-}" ] && continue
        [ "$h" = saga_lua.h ] && [ "$layer" = store ] && continue # generated
        [ "$h" = openapi_json.h ] && [ "$layer" = http ] && continue # generated
        [ "$h" = console_files.h ] && [ "$layer" = http ] && continue # generated
        hl=$(header_layer "$h")
        if [ -z "$hl" ]; then
            fail "$f:$line" "includes \"$h\": not an engine header by its folder (write \"<layer>/<file>.h\" or \"saga/<file>.h\")"
        elif [ "${rank[$hl]}" -gt "${rank[$layer]}" ]; then
            fail "$f:$line" "includes \"$h\" of layer $hl, above its own layer $layer"
        elif [[ $h == *_internal.h ]] && [ "$hl" != "$layer" ]; then
            fail "$f:$line" "includes \"$h\", private to engine/$hl"
        fi
    done < <(includes "$f")
done < <(find engine -name '*.[ch]' | sort)

# ---- definitions/ and steps/: nothing of the engine.
while IFS= read -r f; do
    while read -r line h; do
        [ -z "$h" ] && continue
        case $h in
        saga/definition.h|saga/plugin.h) ;;
        saga/*|util/*|redis/*|postgres/*|store/*|core/*|worker/*|http/*|relay/*|cli/*)
            fail "$f:$line" "includes engine header \"$h\" (definitions/ and steps/ sit below the engine)" ;;
        esac
        if [[ $f == definitions/* && $h == saga/plugin.h ]]; then
            fail "$f:$line" "definitions/ does not depend on the plugin ABI"
        fi
        # The loader is the engine's side of the ABI: a plugin or a helper
        # that plugins link must not reach it (nor the other way round).
        if [[ $f != steps/host/* && $h == plugin_loader.h ]]; then
            fail "$f:$line" "includes the host's \"$h\" (plugins and steps/lib see the ABI header only)"
        fi
        if [[ $f == steps/host/* && -f steps/lib/$h ]]; then
            fail "$f:$line" "includes plugin helper \"$h\" (the loader does not link steps/lib)"
        fi
        if [[ $f == steps/lib/* && -n "$h" && ! -f steps/lib/$h && $h != saga/plugin.h ]]; then
            fail "$f:$line" "includes \"$h\": steps/lib includes its own headers and the ABI header only"
        fi
    done < <(includes "$f")
done < <(find definitions steps -name '*.[ch]' | sort)

# ---- tests/ and bench/: private headers only where INTERNAL_OK says.
while IFS= read -r f; do
    while read -r line h; do
        [[ $h == *_internal.h ]] || continue
        ok=0
        for e in "${INTERNAL_OK[@]}"; do [ "$e" = "$f:$h" ] && ok=1; done
        [ $ok = 1 ] || fail "$f:$line" "includes private \"$h\" (not in INTERNAL_OK of $0)"
    done < <(includes "$f")
done < <(find tests bench -name '*.[ch]' | sort)

[ $bad = 0 ] && echo "layers: every include goes down or sideways"
exit $bad
