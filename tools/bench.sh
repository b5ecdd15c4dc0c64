#!/usr/bin/env bash
# nflow benchmark: nflow's scan against the anchors (numpy memmap method and
# FAISS IndexFlat, shared/anchors/flat_anchors.py) on the same data, in one
# run, with this machine's limits measured in the same run.
#
#   tools/bench.sh [--quick] [--keep] [--nflow BIN] [--anchors DIR] [--threads N]
#
#   --quick      small sizes (a smoke test, ~1 minute)
#   --keep       keep the scratch directory
#   --nflow      the nflow binary (default $NFLOW_BIN, else build*/tools/nflow)
#   --anchors    directory of flat_anchors.py (default $NFLOW_ANCHORS_DIR, else
#                $NFLOW_SOURCE_ROOT/../shared/anchors)
#   --threads    nflow scan threads (default 0 = all online cores)
#
# Scratch data goes under $NFLOW_BENCH_DIR (default $TMPDIR or /tmp) in a fresh
# directory that is deleted at the end.  Full size needs ~5 GB of disk.
#
# Cases: 10,000 x 10,000 q=100 k=10 (build time, query time, peak memory);
# 1,000,000 x 128, q = 1, 10, 100, 1000, k = 10, l2 and ip; memory: peak RSS
# of `nflow bench scan` on a 1M-row vs a 4M-row segment of dim 128.
#
# OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE: the numpy anchor always runs with both
# unset (that command only); nflow runs as the environment is and, when either
# is set, a second time with both unset ("nflow-unset" rows).
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
        -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
        *) echo "bench.sh: unknown option '$1'" >&2; exit 2 ;;
    esac
    shift
done

if [ -z "$nflow" ]; then
    for b in "$src_root"/build*/tools/nflow; do
        if [ -x "$b" ]; then nflow=$b; break; fi
    done
fi
[ -n "$nflow" ] && [ -x "$nflow" ] || { echo "bench.sh: no nflow binary (use --nflow or NFLOW_BIN)" >&2; exit 2; }
[ -f "$anchors/flat_anchors.py" ] || { echo "bench.sh: no flat_anchors.py in '$anchors' (use --anchors)" >&2; exit 2; }
"$PY" -c 'import numpy, faiss' 2>/dev/null || { echo "bench.sh: $PY lacks numpy or faiss" >&2; exit 2; }

base=${NFLOW_BENCH_DIR:-${TMPDIR:-/tmp}}
mkdir -p "$base"
work=$(mktemp -d "$base/nflow-bench-XXXXXX")
cleanup() { if [ "$keep" = 1 ]; then echo "kept $work" >&2; else rm -rf "$work"; fi; }
trap cleanup EXIT
results=$work/results.tsv
: > "$results"

if [ "$quick" = 1 ]; then
    big_n=2000; big_d=512; big_q=20
    n=50000; d=64; qs="1 10 100"
    mem_small=50000; mem_large=200000
    limit_mb=256
else
    big_n=10000; big_d=10000; big_q=100
    n=1000000; d=128; qs="1 10 100 1000"
    mem_small=1000000; mem_large=4000000
    limit_mb=1024
fi
k=10

blas_set=0
if [ -n "${OPENBLAS_CORETYPE+x}" ] || [ -n "${OPENBLAS_L2_SIZE+x}" ]; then blas_set=1; fi

now() { date +%s.%N; }
elapsed() { "$PY" -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.3f}')" "$1" "$2"; }
field() { tr ' ' '\n' | sed -n "s/^$1=//p" | head -1; }
log() { echo "== $*" >&2; }

# gen N D FILE: the anchors' data generator, timed (this is numpy's whole
# "build": the anchors have no index, only the raw matrix file).
gen() {
    local t0 t1
    t0=$(now)
    "$PY" "$anchors/flat_anchors.py" gen "$1" "$2" "$3"
    t1=$(now)
    elapsed "$t0" "$t1"
}

# build DIR D METRIC FILE: nflow segment build, timed.
build() {
    local t0 t1
    t0=$(now)
    "$nflow" segment build "$1" --dim "$2" --metric "$3" "$4" > /dev/null
    t1=$(now)
    elapsed "$t0" "$t1"
}

# queries Q D FILE: the anchors' query matrix (numpy default_rng(1)).
queries() {
    "$PY" -c "
import sys, numpy as np
q, d = int(sys.argv[1]), int(sys.argv[2])
np.random.default_rng(1).standard_normal((q, d), dtype=np.float32).tofile(sys.argv[3])" "$1" "$2" "$3"
}

# record CASE TOOL LINE [RECALL]: keep the numbers of one anchor-format line.
record() {
    local s qps gbps rss
    s=$(echo "$3" | field best_s)      # nflow with --repeat: the best of its searches
    [ -n "$s" ] || s=$(echo "$3" | field query_s)
    qps=$(echo "$3" | field best_qps)
    [ -n "$qps" ] || qps=$(echo "$3" | field qps)
    gbps=$(echo "$3" | field scan_GBps)
    rss=$(echo "$3" | field peak_rss_MB)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$s" "$qps" "$gbps" "$rss" "${4:--}" >> "$results"
}

recall() {
    "$PY" -c "
import sys, numpy as np
a = np.fromfile(sys.argv[1], np.int32); b = np.fromfile(sys.argv[2], np.int32)
k = int(a[0]); a = a.reshape(-1, k + 1)[:, 1:]; b = b.reshape(-1, k + 1)[:, 1:]
print(f'{np.mean([len(set(x) & set(y)) / k for x, y in zip(a, b)]):.4f}')" "$1" "$2"
}

# run_case CASE FILE SEGDIR D Q METRIC
run_case() {
    local case=$1 file=$2 seg=$3 dd=$4 q=$5 metric=$6 line qf=$work/q$5x$4.f32
    [ -f "$qf" ] || queries "$q" "$dd" "$qf"
    log "$case: nflow"
    # --repeat 2: one warm-up search, then the timed one (FAISS's index.add
    # has touched its data before its timed search in the same way; nflow's
    # first search after a build also maps the freshly written pages).
    line=$("$nflow" bench scan "$seg" --queries "$qf" -q "$q" -k "$k" --threads "$threads" --repeat 2 --truth "$work/nflow.ivecs")
    echo "$line" >&2
    log "$case: faiss"
    local fline
    fline=$("$PY" "$anchors/flat_anchors.py" faiss "$file" "$dd" "$q" "$k" "$metric" --truth "$work/faiss.ivecs")
    echo "$fline" >&2
    record "$case" nflow "$line" "$(recall "$work/nflow.ivecs" "$work/faiss.ivecs")"
    # FAISS holds the data in RAM; the same policy for nflow (vectors: memory).
    line=$("$nflow" bench scan "$seg" --queries "$qf" -q "$q" -k "$k" --threads "$threads" --repeat 2 --policy memory)
    echo "$line (vectors in memory)" >&2
    record "$case" nflow-mem "$line"
    if [ "$blas_set" = 1 ]; then
        line=$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$nflow" bench scan "$seg" --queries "$qf" -q "$q" -k "$k" --threads "$threads" --repeat 2)
        echo "$line (OPENBLAS_* unset)" >&2
        record "$case" nflow-unset "$line"
    fi
    record "$case" faiss "$fline"
    log "$case: numpy"
    line=$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$PY" "$anchors/flat_anchors.py" numpy "$file" "$dd" "$q" "$k" "$metric")
    echo "$line" >&2
    record "$case" numpy "$line"
}

log "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'); OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE-<unset>} OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE-<unset>}"
log "limits"
limits=$("$nflow" bench limits --mem-mb "$limit_mb")
echo "$limits" >&2
bw=$(echo "$limits" | field dram_read_GBps)
gf=$(echo "$limits" | field sgemm_GFLOPs)

# --- 10k x 10k: build time, query time, peak memory -------------------------
log "data ${big_n} x ${big_d}"
big_file=$work/big.f32
big_gen_s=$(gen "$big_n" "$big_d" "$big_file")
big_build_s=$(build "$work/big.seg" "$big_d" l2 "$big_file")
run_case "${big_n}x${big_d} q=${big_q} l2" "$big_file" "$work/big.seg" "$big_d" "$big_q" l2
rm -rf "$big_file" "$work/big.seg"

# --- 1M x 128 ---------------------------------------------------------------
log "data ${n} x ${d}"
file=$work/base.f32
gen_s=$(gen "$n" "$d" "$file")
build_l2_s=$(build "$work/l2.seg" "$d" l2 "$file")
build_ip_s=$(build "$work/ip.seg" "$d" ip "$file")
for metric in l2 ip; do
    for q in $qs; do
        run_case "${n}x${d} q=$q $metric" "$file" "$work/$metric.seg" "$d" "$q" "$metric"
    done
done
rm -rf "$work/ip.seg"

# --- memory: 1M vs 4M rows ---------------------------------------------------
log "memory case: ${mem_small} vs ${mem_large} rows"
mem_q=10
queries "$mem_q" "$d" "$work/qmem.f32"
small_seg=$work/l2.seg
if [ "$mem_small" != "$n" ]; then
    "$PY" "$anchors/flat_anchors.py" gen "$mem_small" "$d" "$work/small.f32"
    build "$work/small.seg" "$d" l2 "$work/small.f32" > /dev/null
    rm -f "$work/small.f32"
    small_seg=$work/small.seg
fi
rm -f "$file"
"$PY" "$anchors/flat_anchors.py" gen "$mem_large" "$d" "$work/large.f32"
build "$work/large.seg" "$d" l2 "$work/large.f32" > /dev/null
rm -f "$work/large.f32"
mem_small_line=$("$nflow" bench scan "$small_seg" --queries "$work/qmem.f32" -q "$mem_q" -k "$k" --threads "$threads")
mem_large_line=$("$nflow" bench scan "$work/large.seg" --queries "$work/qmem.f32" -q "$mem_q" -k "$k" --threads "$threads")
echo "$mem_small_line" >&2
echo "$mem_large_line" >&2
record "memory ${mem_small}x${d} q=$mem_q" nflow "$mem_small_line"
record "memory ${mem_large}x${d} q=$mem_q" nflow "$mem_large_line"

# --- the table ---------------------------------------------------------------
"$PY" - "$results" "$bw" "$gf" <<EOF
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
bw, gf = float(sys.argv[2]), float(sys.argv[3])
print(f"machine limits: DRAM read {bw:.2f} GB/s, sgemm {gf:.1f} GFLOP/s ($(nproc) cores)")
print(f"build: ${big_n}x${big_d}: nflow segment build ${big_build_s} s, numpy/anchor gen ${big_gen_s} s; "
      f"${n}x${d}: nflow l2 ${build_l2_s} s, ip ${build_ip_s} s, numpy/anchor gen ${gen_s} s")
print("  (the anchors have no index: their 'build' is writing the raw float32 file from numpy;")
print("   nflow's build also computes norms, stores ids and fdatasyncs a checksummed segment)")
print()
by = {}
for case, tool, s, qps, gbps, rss, rec in rows:
    by[(case, tool)] = float(s)
hdr = f"{'case':<28} {'tool':<11} {'seconds':>9} {'qps':>11} {'GB/s':>7} {'RSS MB':>7} {'x numpy':>8} {'x faiss':>8} {'% limit':>8} {'recall':>7}"
print(hdr); print("-" * len(hdr))
import re
for case, tool, s, qps, gbps, rss, rec in rows:
    s = float(s)
    xn = by.get((case, "numpy")); xf = by.get((case, "faiss"))
    xn = f"{xn / s:.2f}" if xn else "-"
    xf = f"{xf / s:.2f}" if xf else "-"
    m = re.search(r"(\d+)x(\d+) q=(\d+)", case)
    lim = "-"
    if m:
        gbps = int(m.group(1)) * int(m.group(2)) * 4 / s / 1e9   # of the row's time
        # roofline: the scan cannot beat reading every byte once at the DRAM
        # rate, nor doing 2*n*d*q flops at the sgemm rate; the larger bounds it.
        nn, dd, q = map(int, m.groups())
        t_bw = nn * dd * 4 / (bw * 1e9)
        t_fl = 2 * nn * dd * q / (gf * 1e9)
        lim = f"{100 * max(t_bw, t_fl) / s:.0f}% " + ("bw" if t_bw >= t_fl else "fl")
    print(f"{case:<28} {tool:<11} {s:>9.4f} {float(qps):>11.1f} {float(gbps):>7.2f} {float(rss):>7.0f} {xn:>8} {xf:>8} {lim:>8} {rec:>7}")
mem = [(c, float(r)) for c, t, s, q, g, r, _ in rows if c.startswith("memory")]
if len(mem) == 2:
    print()
    print(f"memory: peak RSS {mem[0][0]}: {mem[0][1]:.0f} MB, {mem[1][0]}: {mem[1][1]:.0f} MB, "
          f"ratio {mem[1][1] / mem[0][1]:.3f} (target <= 1.10)")
print()
print("x numpy / x faiss: that tool's seconds divided by this row's (> 1 = this row is faster).")
print("% limit: the machine's bound for the case (max of n*d*4 bytes at the DRAM read rate and")
print("  2*n*d*q flops at the sgemm rate; 'bw' or 'fl' says which) over this row's seconds.")
print("nflow: vectors mmap'd and released per window (constant memory); nflow-mem: vectors: memory.")
print("recall: nflow rows vs faiss rows (1.0 except ties).")
print("nflow rows: the second search in one process (the first warms the mapping, as FAISS's")
print("  index.add warms its copy); the first search's time is in the log above.")
EOF
