# tools/bench_lib.sh: what the benchmark scripts share (sourced by bench.sh,
# bench_filter.sh and bench_flow.sh, after they set $nflow, $anchors, $PY and
# $src_root from the environment and their options).

# bench_find_nflow NAME: $nflow, else the checkout's build/tools/nflow (the
# release build), else the first other build*/tools/nflow ("build-asan" sorts
# before "build/"); exit 2 naming NAME when there is none.
bench_find_nflow() {
    if [ -z "$nflow" ]; then
        for b in "$src_root"/build/tools/nflow "$src_root"/build*/tools/nflow; do
            if [ -x "$b" ]; then nflow=$b; break; fi
        done
    fi
    [ -n "$nflow" ] && [ -x "$nflow" ] || { echo "$1: no nflow binary (use --nflow or NFLOW_BIN)" >&2; exit 2; }
}

# bench_need_anchors NAME: flat_anchors.py in $anchors, numpy and faiss in $PY.
bench_need_anchors() {
    [ -f "$anchors/flat_anchors.py" ] || { echo "$1: no flat_anchors.py in '$anchors' (use --anchors)" >&2; exit 2; }
    "$PY" -c 'import numpy, faiss' 2>/dev/null || { echo "$1: $PY lacks numpy or faiss" >&2; exit 2; }
}

# bench_workdir PREFIX: $work, a fresh directory under $NFLOW_BENCH_DIR
# (default $TMPDIR or /tmp).
bench_workdir() {
    local base=${NFLOW_BENCH_DIR:-${TMPDIR:-/tmp}}
    mkdir -p "$base"
    work=$(mktemp -d "$base/$1-XXXXXX")
}
