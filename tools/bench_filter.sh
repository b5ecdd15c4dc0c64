#!/usr/bin/env bash
# nflow filtered-search benchmark: exact top-k with a filter, against FAISS
# IndexFlatL2 with an id selector (IDSelectorBitmap and IDSelectorBatch) and
# the numpy method over the gathered rows (shared/anchors/flat_anchors.py
# --mask), with nflow's own unfiltered search as the ceiling, in one run.
#
#   tools/bench_filter.sh [--quick] [--keep] [--nflow BIN] [--anchors DIR] [--threads N]
#
#   --quick      50,000 x 64 (a smoke test, under a minute)
#   --keep       keep the scratch directory
#   --nflow      the nflow binary (default $NFLOW_BIN, else build/tools/nflow,
#                else another build*/tools/nflow)
#   --anchors    directory of flat_anchors.py (default $NFLOW_ANCHORS_DIR, else
#                $NFLOW_SOURCE_ROOT/../shared/anchors)
#   --threads    nflow scan threads (default 0 = all online cores)
#
# Data: 1,000,000 x 128 standard-normal rows (the anchors' generator), l2,
# k = 10, q = 1 and q = 100 (the anchors' queries, default_rng(1)).  Two
# fields: tag, a keyword drawn uniformly at random from 1,000 (k000..k999),
# and seq, an int that grows with the row (as a date does).  Filters keeping
# 0.1%, 1%, 10%, 50% and 100% of the rows:
#   random     tag == "k000" / tag in [10 tags] / [100] / [500] / tag is not null
#   clustered  seq >= n/2 and seq < n/2 + n*sel (a range of consecutive rows)
# The same rows go to the anchors as a mask (one byte per row).  nflow's time
# is the best of 3 scans in one process (--repeat 3), the anchors' one timed
# search after loading (FAISS holds the data in RAM; numpy gathers the rows
# from its memmap); "filter" is nflow's filter-evaluation time (thread time,
# both threads summed), inside its total.  Recall: nflow's ids against
# numpy's over the same rows.  Scratch data under $NFLOW_BENCH_DIR (default
# $TMPDIR or /tmp); full size needs ~1.2 GB of disk.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src_root=${NFLOW_SOURCE_ROOT:-$(dirname "$here")}
PY=${PYTHON:-/usr/bin/python3}
quick=0
keep=0
threads=0
nflow=${NFLOW_BIN:-}
anchors=${NFLOW_ANCHORS_DIR:-$src_root/../shared/anchors}

while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=1 ;;
        --keep) keep=1 ;;
        --nflow) nflow=$2; shift ;;
        --anchors) anchors=$2; shift ;;
        --threads) threads=$2; shift ;;
        -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
        *) echo "bench_filter.sh: unknown option '$1'" >&2; exit 2 ;;
    esac
    shift
done

. "$here/bench_lib.sh"
bench_find_nflow bench_filter.sh
bench_need_anchors bench_filter.sh
bench_workdir nflow-bench-filter
cleanup() { if [ "$keep" = 1 ]; then echo "kept $work" >&2; else rm -rf "$work"; fi; }
trap cleanup EXIT

if [ "$quick" = 1 ]; then
    n=50000; d=64
else
    n=1000000; d=128
fi
k=10
sels="0.001 0.01 0.1 0.5 1"
qs="1 100"

field() { tr ' ' '\n' | sed -n "s/^$1=//p" | head -1; }
log() { echo "== $*" >&2; }

log "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
log "data $n x $d"
"$PY" "$anchors/flat_anchors.py" gen "$n" "$d" "$work/base.f32"

# Fields (one JSONL line per row), masks, queries and the filter texts.
"$PY" - "$n" "$d" "$work" "$sels" "$qs" <<'EOF'
import sys, numpy as np
n, d, work = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
sels = [float(s) for s in sys.argv[4].split()]
tag = np.random.default_rng(2).integers(0, 1000, n)
with open(f"{work}/fields.jsonl", "w") as f:
    f.writelines(f'{{"tag":"k{t:03d}","seq":{i}}}\n' for i, t in enumerate(tag))
for q in (int(x) for x in sys.argv[5].split()):
    np.random.default_rng(1).standard_normal((q, d), dtype=np.float32).tofile(f"{work}/q{q}.f32")
with open(f"{work}/cases.tsv", "w") as cases:
    for s in sels:
        m = int(round(1000 * s))
        if m >= 1000:
            text, mask = "tag is not null", np.ones(n, bool)
        elif m == 1:
            text, mask = 'tag == "k000"', tag == 0
        else:
            text = "tag in [" + ", ".join(f'"k{t:03d}"' for t in range(m)) + "]"
            mask = tag < m
        mask.astype(np.uint8).tofile(f"{work}/random-{s}.mask")
        cases.write(f"random\t{s}\t{text}\n")
        if s >= 1:
            text, mask = "seq >= 0", np.ones(n, bool)
        else:
            lo, hi = n // 2, n // 2 + int(round(n * s))
            text = f"seq >= {lo} and seq < {hi}"
            mask = (np.arange(n) >= lo) & (np.arange(n) < hi)
        mask.astype(np.uint8).tofile(f"{work}/clustered-{s}.mask")
        cases.write(f"clustered\t{s}\t{text}\n")
EOF

log "build"
t0=$(date +%s.%N)
"$nflow" segment build "$work/seg" "$work/base.f32" --dim "$d" --field tag:keyword --field seq:int \
    --fields-file "$work/fields.jsonl" >&2
t1=$(date +%s.%N)
build_s=$("$PY" -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$t0" "$t1")
rm -f "$work/fields.jsonl"

# nflow_search Q [FILTER]: prints the --stats line
nflow_search() {
    local q=$1
    shift
    "$nflow" segment search "$work/seg" --queries "$work/q$q.f32" -k "$k" --threads "$threads" \
        --repeat 3 --stats --json "$@" 2> "$work/stats" > "$work/nflow.json"
    tail -1 "$work/stats"
}

# recall of nflow.json against an ivecs truth
recall() {
    "$PY" - "$work/nflow.json" "$1" "$k" <<'EOF'
import sys, json, numpy as np
k = int(sys.argv[3])
t = np.fromfile(sys.argv[2], np.int32).reshape(-1, k + 1)[:, 1:]
got = [[int(m["id"]) for m in json.loads(l)["matches"]] for l in open(sys.argv[1])]
r = [len(set(g) & set(x for x in tr if x >= 0)) / max(1, len([x for x in tr if x >= 0]))
     for g, tr in zip(got, t)]
print(f"{np.mean(r):.4f}")
EOF
}

ms() { "$PY" -c "import sys; print(f'{float(sys.argv[1]) * 1000:.2f}')" "$1"; }

results=$work/results.tsv
: > "$results"
declare -A ceiling
for q in $qs; do
    log "unfiltered q=$q"
    line=$(nflow_search "$q")
    echo "$line" >&2
    ceiling[$q]=$(echo "$line" | field scan_s)
    fl=$("$PY" "$anchors/flat_anchors.py" faiss "$work/base.f32" "$d" "$q" "$k" l2)
    echo "$fl" >&2
    printf 'none\t1\t%s\t%s\t-\t-\t%s\t-\t-\t-\n' "$q" "$(ms "${ceiling[$q]}")" \
        "$(ms "$(echo "$fl" | field query_s)")" >> "$results"
done

while IFS=$'\t' read -r kind sel text; do
    mask=$work/$kind-$sel.mask
    for q in $qs; do
        log "$kind $sel q=$q: ${text:0:100}"
        line=$(nflow_search "$q" --filter "$text")
        echo "$line" >&2
        ns=$(echo "$line" | field scan_s)
        fs=$(echo "$line" | field filter_s)
        path="skip $(echo "$line" | field skipped)/gather $(echo "$line" | field gathered)/runs $(echo "$line" | field runs)/whole $(echo "$line" | field whole)"
        cp "$work/nflow.json" "$work/nflow.keep.json"
        fb=$("$PY" "$anchors/flat_anchors.py" faiss "$work/base.f32" "$d" "$q" "$k" l2 --mask "$mask" --selector bitmap)
        echo "$fb" >&2
        fbat=$("$PY" "$anchors/flat_anchors.py" faiss "$work/base.f32" "$d" "$q" "$k" l2 --mask "$mask" --selector batch)
        echo "$fbat" >&2
        np_line=$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$PY" "$anchors/flat_anchors.py" numpy "$work/base.f32" "$d" "$q" "$k" l2 --mask "$mask" --truth "$work/numpy.ivecs")
        echo "$np_line" >&2
        cp "$work/nflow.keep.json" "$work/nflow.json"
        rc=$(recall "$work/numpy.ivecs")
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$kind" "$sel" "$q" "$(ms "$ns")" "$(ms "$fs")" \
            "$path" "$(ms "$(echo "$fb" | field query_s)")" "$(ms "$(echo "$fbat" | field query_s)")" \
            "$(ms "$(echo "$np_line" | field query_s)")" "$rc" >> "$results"
    done
done < "$work/cases.tsv"

"$PY" - "$results" "$n" "$d" "$k" "$build_s" <<'EOF'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
n, d, k, build = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
ceil = {r[2]: float(r[3]) for r in rows if r[0] == "none"}
print(f"nflow filtered search, {int(n):,} x {d}, l2, k = {k} (build with 2 fields: {build} s)\n")
print("| filter | kept | q | nflow ms | filter ms | windows | FAISS bitmap ms | FAISS batch ms | numpy ms "
      "| vs FAISS (best) | vs numpy | vs unfiltered | recall |")
print("| --- | --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for r in rows:
    if r[0] == "none":
        print(f"| none (ceiling) | 100% | {r[2]} | {r[3]} | - | - | {r[6]} (no selector) | - | - | "
              f"{float(r[6]) / float(r[3]):.1f}x | - | 1.0x | - |")
        continue
    kind, sel, q, t, fs, path, fb, fbat, npy, rc = r
    t = float(t)
    best = min(float(fb), float(fbat))
    print(f"| {kind} | {float(sel) * 100:g}% | {q} | {t:.2f} | {fs} | {path} | {fb} | {fbat} | {npy} | "
          f"{best / t:.1f}x | {float(npy) / t:.1f}x | {ceil[q] / t:.1f}x | {rc} |")
EOF
