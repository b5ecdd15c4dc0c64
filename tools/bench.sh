#!/usr/bin/env bash
# nflow benchmark: nflow's scan against the anchors (numpy memmap method and
# FAISS IndexFlat, shared/anchors/flat_anchors.py) on the same data, in one
# run, with this machine's limits measured in the same run.
#
#   tools/bench.sh [--quick] [--keep] [--nflow BIN] [--anchors DIR] [--threads N]
#
#   --quick      small sizes (a smoke test, ~1 minute)
#   --keep       keep the scratch directory
#   --nflow      the nflow binary (default $NFLOW_BIN, else build/tools/nflow,
#                else another build*/tools/nflow)
#   --anchors    directory of flat_anchors.py (default $NFLOW_ANCHORS_DIR, else
#                $NFLOW_SOURCE_ROOT/../shared/anchors)
#   --threads    nflow scan threads (default 0 = all online cores)
#
# Scratch data goes under $NFLOW_BENCH_DIR (default $TMPDIR or /tmp) in a fresh
# directory that is deleted at the end.  Full size needs ~5 GB of disk.
#
# Cases: 10,000 x 10,000 q=100 k=10 (build time, query time, peak memory);
# 1,000,000 x 128, q = 1, 10, 100, 1000, k = 10, l2 and ip; 1,000,000 x 384,
# q = 1, 10, l2; at 1M x 128 and 1M x 384, q = 1 and 10 also over a segment
# grown by 100-row appends (`segment build --batch 100`, what indexing through
# a flow writes: "nflow-grown" rows), all under the default mmap policy;
# `nflow segment build` MB/s against the disk's synchronous write rate (5 MiB
# write + fdatasync steps, `nflow bench limits --disk-dir`, same filesystem);
# memory: peak RSS of `nflow segment search` (ids and payloads resolved) on a
# 1M-row vs a 4M-row segment, q = 1, 10, 100, 1000 at d = 64 and 128; and a
# flow's indexer pod (one shard, `nflow up`) under a stream of distinct single
# searches (`nflow bench flow`) over 1M vs 4M indexed rows (d 128): its peak RSS
# during the searches (VmHWM, reset after indexing) and what the searches added
# to its resident memory (the id -> row table a writer keeps, ~32 bytes a row,
# is in both).  Needs the pod programs ($NFLOW_PODS_DIR, else the nflow binary's
# ../pods); skipped with a message without them.
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
        -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
        *) echo "bench.sh: unknown option '$1'" >&2; exit 2 ;;
    esac
    shift
done

. "$here/bench_lib.sh"
bench_find_nflow bench.sh
bench_need_anchors bench.sh
bench_workdir nflow-bench
cleanup() { if [ "$keep" = 1 ]; then echo "kept $work" >&2; else rm -rf "$work"; fi; }
trap cleanup EXIT
results=$work/results.tsv
: > "$results"

if [ "$quick" = 1 ]; then
    big_n=2000; big_d=512; big_q=20
    n=50000; d=64; qs="1 10 100"
    wide_n=20000; wide_d=384
    mem_small=50000; mem_large=200000; mem_dims="64 128"; mem_qs="1 10 100 1000"
    limit_mb=256; disk_mb=50; flow_q=200; reps=3
else
    big_n=10000; big_d=10000; big_q=100
    n=1000000; d=128; qs="1 10 100 1000"
    wide_n=1000000; wide_d=384
    mem_small=1000000; mem_large=4000000; mem_dims="64 128"; mem_qs="1 10 100 1000"
    limit_mb=1024; disk_mb=500; flow_q=2000; reps=6
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

# build DIR D METRIC FILE [ARGS...]: nflow segment build, timed.
build() {
    local t0 t1 dir=$1 dd=$2 metric=$3 f=$4
    shift 4
    t0=$(now)
    "$nflow" segment build "$dir" --dim "$dd" --metric "$metric" "$f" "$@" > /dev/null
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
    s=$(echo "$3" | field median_s)    # nflow: the median of its searches after the first
    [ -n "$s" ] || s=$(echo "$3" | field query_s)
    qps=$(echo "$3" | field median_qps)
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

# grown CASE SEGDIR D Q: nflow over a segment grown by small appends (mmap).
grown() {
    local case=$1 seg=$2 dd=$3 q=$4 line qf=$work/q$4x$3.f32
    [ -f "$qf" ] || queries "$q" "$dd" "$qf"
    line=$("$nflow" bench scan "$seg" --queries "$qf" -q "$q" -k "$k" --threads "$threads" --repeat "$reps")
    echo "$line (grown by 100-row appends)" >&2
    record "$case" nflow-grown "$line"
}

# peak_rss_kb CMD...: peak RSS (KiB) of CMD, run with its output discarded.
peak_rss_kb() {
    "$PY" -c "
import resource, subprocess, sys
p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
if p.returncode:
    sys.exit(' '.join(sys.argv[1:]) + ': exit %d: %s' % (p.returncode, p.stderr.strip()))
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)" "$@"
}

# run_case CASE FILE SEGDIR D Q METRIC
run_case() {
    local case=$1 file=$2 seg=$3 dd=$4 q=$5 metric=$6 line qf=$work/q$5x$4.f32
    [ -f "$qf" ] || queries "$q" "$dd" "$qf"
    log "$case: nflow"
    # --repeat $reps: one warm-up search, then the timed ones, of which the
    # table gives the median: one timed search on this 2-core VM moved by
    # 20-30 % between runs (FAISS's index.add has touched its data before
    # its timed search in the same way; nflow's first search after a build
    # also maps the freshly written pages).
    line=$("$nflow" bench scan "$seg" --queries "$qf" -q "$q" -k "$k" --threads "$threads" --repeat "$reps" --truth "$work/nflow.ivecs")
    echo "$line" >&2
    log "$case: faiss"
    local fline
    fline=$("$PY" "$anchors/flat_anchors.py" faiss "$file" "$dd" "$q" "$k" "$metric" --truth "$work/faiss.ivecs")
    echo "$fline" >&2
    record "$case" nflow "$line" "$(recall "$work/nflow.ivecs" "$work/faiss.ivecs")"
    # FAISS holds the data in RAM; the same policy for nflow (vectors: memory).
    line=$("$nflow" bench scan "$seg" --queries "$qf" -q "$q" -k "$k" --threads "$threads" --repeat "$reps" --policy memory)
    echo "$line (vectors in memory)" >&2
    record "$case" nflow-mem "$line"
    if [ "$blas_set" = 1 ]; then
        line=$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$nflow" bench scan "$seg" --queries "$qf" -q "$q" -k "$k" --threads "$threads" --repeat "$reps")
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
limits=$("$nflow" bench limits --mem-mb "$limit_mb" --disk-dir "$work" --disk-mb "$disk_mb")
echo "$limits" >&2
bw=$(echo "$limits" | field dram_read_GBps)
gf=$(echo "$limits" | field sgemm_GFLOPs)
disk=$(echo "$limits" | field disk_sync_write_MBps)

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
log "segment grown by 100-row appends: ${n} x ${d}"
build_grown_s=$(build "$work/grown.seg" "$d" l2 "$file" --batch 100)
for q in 1 10; do grown "${n}x${d} q=$q l2" "$work/grown.seg" "$d" "$q"; done
rm -rf "$work/grown.seg"

# --- 1M x 384: q = 1, 10, built at once and grown ---------------------------
log "data ${wide_n} x ${wide_d}"
wfile=$work/wide.f32
"$PY" "$anchors/flat_anchors.py" gen "$wide_n" "$wide_d" "$wfile"
build_wide_s=$(build "$work/wide.seg" "$wide_d" l2 "$wfile")
for q in 1 10; do
    run_case "${wide_n}x${wide_d} q=$q l2" "$wfile" "$work/wide.seg" "$wide_d" "$q" l2
done
rm -rf "$work/wide.seg"
build_wide_grown_s=$(build "$work/wgrown.seg" "$wide_d" l2 "$wfile" --batch 100)
for q in 1 10; do grown "${wide_n}x${wide_d} q=$q l2" "$work/wgrown.seg" "$wide_d" "$q"; done
rm -rf "$work/wgrown.seg" "$wfile"

# --- memory: 1M vs 4M rows, q = 1, 10, 100, 1000, d = 64 and 128 -----------
rm -f "$file"
rm -rf "$work/l2.seg"
memtab=$work/memory.tsv
: > "$memtab"
for md in $mem_dims; do
    log "memory case: ${mem_small} vs ${mem_large} rows, d = $md"
    "$PY" "$anchors/flat_anchors.py" gen "$mem_large" "$md" "$work/large.f32"
    head -c $((mem_small * md * 4)) "$work/large.f32" > "$work/small.f32"
    build "$work/small.seg" "$md" l2 "$work/small.f32" > /dev/null
    build "$work/large.seg" "$md" l2 "$work/large.f32" > /dev/null
    rm -f "$work/small.f32" "$work/large.f32"
    for q in $mem_qs; do
        qf=$work/q${q}x$md.f32
        [ -f "$qf" ] || queries "$q" "$md" "$qf"
        small_kb=$(peak_rss_kb "$nflow" segment search "$work/small.seg" --queries "$qf" -k "$k" --threads "$threads")
        large_kb=$(peak_rss_kb "$nflow" segment search "$work/large.seg" --queries "$qf" -k "$k" --threads "$threads")
        echo "memory d=$md q=$q: peak RSS ${mem_small} rows ${small_kb} KiB, ${mem_large} rows ${large_kb} KiB" >&2
        printf '%s\t%s\t%s\t%s\n' "$md" "$q" "$small_kb" "$large_kb" >> "$memtab"
    done
    rm -rf "$work/small.seg" "$work/large.seg"
done

# --- memory: a flow's indexer under a stream of distinct searches -------------
pods=${NFLOW_PODS_DIR:-$(dirname "$(dirname "$nflow")")/pods}
flowmem=$work/flowmem.tsv
: > "$flowmem"
fm_up=
fm_stop() {
    [ -n "$fm_up" ] || return 0
    kill -TERM "$fm_up" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$fm_up" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$fm_up" 2>/dev/null || true
    wait "$fm_up" 2>/dev/null || true
    fm_up=
}
trap 'fm_stop; cleanup' EXIT
# flow_mem ROWS: index ROWS x 128 through a one-shard flow, then 1 client's
# stream of distinct searches; appends "rows rss_before_kb hwm_kb" to flowmem.
flow_mem() {
    local rows=$1 fd=128 dir=$work/flowmem-$1 gw= pid kb0 hwm
    mkdir -p "$dir"
    "$PY" "$anchors/flat_anchors.py" gen "$rows" "$fd" "$dir/base.f32"
    "$PY" - "$dir/base.f32" "$dir/base.fvecs" "$fd" <<'PY'
import sys
import numpy as np
a = np.memmap(sys.argv[1], dtype=np.float32, mode="r").reshape(-1, int(sys.argv[3]))
head = np.array([a.shape[1]], dtype=np.int32).view(np.float32)[0]
with open(sys.argv[2], "wb") as f:
    for i in range(0, a.shape[0], 65536):
        b = a[i:i + 65536]
        o = np.empty((b.shape[0], a.shape[1] + 1), dtype=np.float32)
        o[:, 0] = head
        o[:, 1:] = b
        o.tofile(f)
PY
    rm -f "$dir/base.f32"
    cat > "$dir/flow.yml" <<YML
# written by tools/bench.sh (indexer memory)
version: 1
name: benchmem
gateway: {host: 127.0.0.1, port: 0, with: {timeout_ms: 60000}}
pods:
  - name: indexer
    uses: indexer
    shards: 1
    with: {dim: $fd, metric: l2}
  - name: reducer
    uses: reducer
YML
    NFLOW_PODS_DIR=$pods "$nflow" up "$dir/flow.yml" --workspace "$dir/ws" > "$dir/up.out" 2> "$dir/up.err" &
    fm_up=$!
    for _ in $(seq 600); do
        gw=$(sed -n 's/^ready gateway=//p' "$dir/up.out" 2>/dev/null || true)
        [ -n "$gw" ] && break
        kill -0 "$fm_up" 2>/dev/null || break
        sleep 0.1
    done
    [ -n "$gw" ] || { echo "bench.sh: the memory flow did not start:" >&2; tail -5 "$dir/up.err" >&2; fm_stop; return 1; }
    "$nflow" index --gateway "$gw" --batch 10000 --inflight 4 "$dir/base.fvecs" > /dev/null
    pid=$("$PY" -c 'import json,sys
print(next(p["pid"] for p in json.load(open(sys.argv[1]))["pods"] if p["uses"] == "indexer"))' "$dir/ws/flow.state")
    echo 5 > "/proc/$pid/clear_refs"        # VmHWM := VmRSS: the searches' peak from here
    kb0=$(sed -n 's/^VmRSS:[^0-9]*\([0-9]*\).*/\1/p' "/proc/$pid/status")
    "$nflow" bench flow --gateway "$gw" --queries "$work/qflow.f32" --dim "$fd" -n "$flow_q" -c 1 -k "$k" --warmup 0 >&2
    hwm=$(sed -n 's/^VmHWM:[^0-9]*\([0-9]*\).*/\1/p' "/proc/$pid/status")
    echo "indexer over $rows rows: RSS after indexing $kb0 KiB, peak during $flow_q searches $hwm KiB" >&2
    printf '%s\t%s\t%s\n' "$rows" "$kb0" "$hwm" >> "$flowmem"
    fm_stop
    rm -rf "$dir"
}
if [ -d "$pods" ]; then
    log "memory: a flow's indexer, ${mem_small} vs ${mem_large} rows, $flow_q distinct searches"
    "$PY" -c "
import sys, numpy as np
np.random.default_rng(2).standard_normal((int(sys.argv[1]), 128), dtype=np.float32).tofile(sys.argv[2])" \
        "$flow_q" "$work/qflow.f32"
    flow_mem "$mem_small" || true
    flow_mem "$mem_large" || true
else
    log "memory: no pods directory '$pods' (set NFLOW_PODS_DIR): the indexer rows are skipped"
fi

# --- the table ---------------------------------------------------------------
"$PY" - "$results" "$bw" "$gf" "$memtab" "${disk:-0}" "$flowmem" <<EOF
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
bw, gf = float(sys.argv[2]), float(sys.argv[3])
print(f"machine limits: DRAM read {bw:.2f} GB/s, sgemm {gf:.1f} GFLOP/s ($(nproc) cores)")
print(f"build: ${big_n}x${big_d}: nflow segment build ${big_build_s} s, numpy/anchor gen ${big_gen_s} s; "
      f"${n}x${d}: nflow l2 ${build_l2_s} s, ip ${build_ip_s} s, numpy/anchor gen ${gen_s} s")
disk = float(sys.argv[5])
for what, nn, dd, secs in (("${n}x${d} at once", ${n}, ${d}, ${build_l2_s}),
                           ("${n}x${d} 100-row appends", ${n}, ${d}, ${build_grown_s}),
                           ("${wide_n}x${wide_d} at once", ${wide_n}, ${wide_d}, ${build_wide_s}),
                           ("${wide_n}x${wide_d} 100-row appends", ${wide_n}, ${wide_d}, ${build_wide_grown_s})):
    mbps = nn * dd * 4 / 1e6 / secs
    rel = f"{mbps / disk:.2f}x" if disk > 0 else "-"
    print(f"  segment build {what}: {secs:.2f} s, {mbps:.0f} MB/s of vectors = {rel} the disk's "
          f"synchronous write rate ({disk:.0f} MB/s, 5 MiB write + fdatasync)")
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
print()
print(f"memory: peak RSS of nflow segment search (k ${k}), ${mem_small} vs ${mem_large} rows (target: ratio <= 1.10)")
print(f"{'d':>5} {'q':>6} {'${mem_small} rows MB':>16} {'${mem_large} rows MB':>16} {'ratio':>7}")
for line in open(sys.argv[4]):
    md, q, a, b = line.split()
    print(f"{md:>5} {q:>6} {int(a) / 1024:>16.1f} {int(b) / 1024:>16.1f} {int(b) / int(a):>7.3f}")
fm = [l.split() for l in open(sys.argv[6]) if l.strip()]
if len(fm) == 2:
    (r0, b0, h0), (r1, b1, h1) = fm
    print(f"memory: a flow's indexer pod (1 shard, d 128) under ${flow_q} distinct single searches:")
    print(f"  {r0} rows: RSS after indexing {int(b0) / 1024:.1f} MB, peak during the searches {int(h0) / 1024:.1f} MB "
          f"(+{(int(h0) - int(b0)) / 1024:.1f} MB)")
    print(f"  {r1} rows: RSS after indexing {int(b1) / 1024:.1f} MB, peak during the searches {int(h1) / 1024:.1f} MB "
          f"(+{(int(h1) - int(b1)) / 1024:.1f} MB)")
    print(f"  ratio of the peaks {int(h1) / int(h0):.3f}; of what the searches added "
          f"{max(int(h1) - int(b1), 1) / max(int(h0) - int(b0), 1):.3f} (the id table, ~32 B a row, is in both RSS)")
print()
print("x numpy / x faiss: that tool's seconds divided by this row's (> 1 = this row is faster).")
print("% limit: the machine's bound for the case (max of n*d*4 bytes at the DRAM read rate and")
print("  2*n*d*q flops at the sgemm rate; 'bw' or 'fl' says which) over this row's seconds.")
print("nflow: vectors mmap'd and released per window (constant memory); nflow-mem: vectors: memory;")
print("  nflow-grown: mmap, over the same rows written by 100-row appends (segment build --batch 100).")
print("recall: nflow rows vs faiss rows (1.0 except ties).")
print(f"nflow rows: the median of {${reps} - 1} searches after a first one in one process (the first")
print("  warms the mapping, as FAISS's index.add warms its copy); the first's time is in the log above.")
EOF
