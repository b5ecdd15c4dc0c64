#!/usr/bin/env bash
# nflow flow benchmark: indexing and search through a real flow started with
# `nflow up` (gateway -> router -> 2 indexer shards -> reducer, no encoder,
# dim 128, l2), next to the same work done in-process on the same data, in
# one run, printed as one table.
#
#   tools/bench_flow.sh [--quick] [--keep] [--nflow BIN] [--pods DIR]
#                       [--anchors DIR] [--rows N] [--clients C] [--batch B]
#                       [--inflight I] [--vectors mmap|memory] [--threads T]
#                       [--curve] [--index-rounds R]
#
#   --quick      50,000 rows, 50 queries: a smoke test (< 30 s)
#   --keep       keep the scratch directory
#   --nflow      the nflow binary (default $NFLOW_BIN, else build/tools/nflow,
#                else another build*/tools/nflow)
#   --pods       directory of the pod programs (default $NFLOW_PODS_DIR, else
#                the nflow binary's ../pods)
#   --anchors    directory of flat_anchors.py (default $NFLOW_ANCHORS_DIR, else
#                $NFLOW_SOURCE_ROOT/../shared/anchors)
#   --rows N     rows to index (default 1,000,000; --quick 50,000)
#   --clients C  concurrent clients of the throughput case (default 8)
#   --batch B    documents per index request of `nflow index` (default 10000,
#                like `nflow segment build`'s batch: with the mmap policy a
#                segment written in small appends scans slower, see below)
#   --inflight I index requests in flight (default 8)
#   --vectors P  the indexers' vector memory policy, and the in-process
#                searches' (default mmap, the indexer's default)
#   --curve      CurveZMQ on every link of the flow (`security: {keys: ...}`,
#                keys made by `nflow keys`; the clients use the client key), to
#                measure what encryption and authentication cost
#   --index-rounds R  indexing rounds, each an in-process build then the
#                flow's index into a fresh flow (default 3; --quick 2); the
#                table gives the medians and each round's ratio
#   --threads T  scan threads of each indexer shard (default: cores / 2, at
#                least 1, so the 2 shards of this one host share the cores
#                without oversubscribing them; 0 = the pod's own default, all
#                cores per shard).  The in-process searches use all cores.
#
# Steps (all timed inside one run):
#   1. data: N x 128 float32 (flat_anchors.py gen), as .f32 and .fvecs;
#      queries: numpy default_rng(1) standard normal (the anchors' queries)
#   2. indexing in R interleaved rounds (a burst of other load, or the
#      disk's mood, then hits both alike): `nflow segment build` of the .f32
#      (in-process, rows/s), then a fresh flow (`nflow up` on an empty
#      workspace) and `nflow index` of the whole .fvecs (vectors/s,
#      acknowledged = durable), `nflow status` rows check; the CPU seconds
#      of the build and of each process of the flow's index (client, pods),
#      printed beside what the cores allow
#   3. in-process over the last build: the exact top-10 of every query
#      (`nflow bench scan --truth`) and `nflow bench scan -q 1 --repeat`;
#      then, with the last round's flow, the searches in interleaved rounds (so that bursts of other load on the machine
#      hit all alike; the table gives medians over the rounds): in-process
#      single queries one at a time (`nflow bench flow --segment`), `nflow
#      bench flow` with 1 client, and with C clients (p50, p99, queries/s,
#      recall against the in-process truth, the route's stages)
#   4. the flow is stopped (SIGTERM to the launcher, which must exit 0);
#      then single queries in-process over the flow's shard 0 segment with
#      the shards' thread count (one shard's scan alone, without the flow)
#   5. the table.  The flow and the scratch directory are cleaned up on any
#      exit, failures and signals included.

# Write pattern and scan speed: under the mmap policy every scan re-maps the
# segment (its windows are released after use), and a vectors file written
# in small appends (e.g. 256 documents per request, `nflow index`'s default)
# sits in the page cache in small pages that cost more to map again: such a
# segment scanned ~35% slower in our runs than one written 10,000 rows at a
# time (the same file re-read from disk is fast again).
#
# Scratch data goes under $NFLOW_BENCH_DIR (default $TMPDIR or /tmp); the full
# size needs ~2.5 GB of disk.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src_root=${NFLOW_SOURCE_ROOT:-$(dirname "$here")}
PY=${PYTHON:-/usr/bin/python3}
quick=0
keep=0
nflow=${NFLOW_BIN:-}
pods=${NFLOW_PODS_DIR:-}
anchors=${NFLOW_ANCHORS_DIR:-$src_root/../shared/anchors}
rows=
clients=8
batch=10000
inflight=8
vectors=mmap
threads=
curve=0
irounds=

while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=1 ;;
        --keep) keep=1 ;;
        --curve) curve=1 ;;
        --nflow) nflow=${2:?--nflow needs a value}; shift ;;
        --pods) pods=${2:?--pods needs a value}; shift ;;
        --anchors) anchors=${2:?--anchors needs a value}; shift ;;
        --rows) rows=${2:?--rows needs a value}; shift ;;
        --clients) clients=${2:?--clients needs a value}; shift ;;
        --batch) batch=${2:?--batch needs a value}; shift ;;
        --inflight) inflight=${2:?--inflight needs a value}; shift ;;
        --vectors) vectors=${2:?--vectors needs a value}; shift ;;
        --threads) threads=${2:?--threads needs a value}; shift ;;
        --index-rounds) irounds=${2:?--index-rounds needs a value}; shift ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) echo "bench_flow.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
case "$vectors" in mmap|memory) ;; *) echo "bench_flow.sh: --vectors: expected mmap or memory, got '$vectors'" >&2; exit 2 ;; esac
case "$threads" in ''|*[!0-9]*) [ -z "$threads" ] || { echo "bench_flow.sh: --threads: expected an integer >= 0, got '$threads'" >&2; exit 2; } ;; esac
[ -n "$threads" ] || threads=$(( $(nproc) / 2 > 0 ? $(nproc) / 2 : 1 ))
for v in "$clients" "$batch" "$inflight" ${rows:+"$rows"} ${irounds:+"$irounds"}; do
    case "$v" in ''|*[!0-9]*|0) echo "bench_flow.sh: expected a positive integer, got '$v'" >&2; exit 2 ;; esac
done

. "$here/bench_lib.sh"
bench_find_nflow bench_flow.sh
[ -n "$pods" ] || pods=$(cd "$(dirname "$nflow")/../pods" 2>/dev/null && pwd || true)
[ -n "$pods" ] && [ -d "$pods" ] || { echo "bench_flow.sh: no pods directory (use --pods or NFLOW_PODS_DIR)" >&2; exit 2; }
export NFLOW_PODS_DIR=$pods
[ -f "$anchors/flat_anchors.py" ] || { echo "bench_flow.sh: no flat_anchors.py in '$anchors' (use --anchors)" >&2; exit 2; }
"$PY" -c 'import numpy' 2>/dev/null || { echo "bench_flow.sh: $PY lacks numpy" >&2; exit 2; }

if [ "$quick" = 1 ]; then
    n=${rows:-50000}; q1=50; q8=100; warm=5; repeat=5; rounds=2; irounds=${irounds:-2}
else
    n=${rows:-1000000}; q1=200; q8=800; warm=10; repeat=21; rounds=4; irounds=${irounds:-3}
fi
d=128
k=10
[ "$clients" -le 256 ] || { echo "bench_flow.sh: --clients must be 1..256" >&2; exit 2; }

bench_workdir nflow-benchflow
up_pid=
up_rc=
log() { echo "== $*" >&2; }

# Stop the flow: SIGTERM the launcher, wait <= 10 s, then SIGKILL it and any
# pod it left.  Sets up_rc to the launcher's exit status.
stop_flow() {
    [ -n "$up_pid" ] || return 0
    local pids
    pids=$("$PY" -c 'import json,sys
try:
    for p in json.load(open(sys.argv[1]))["pods"]:
        if p.get("pid"): print(p["pid"])
except Exception: pass' "$work/ws/flow.state" 2>/dev/null || true)
    kill -TERM "$up_pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$up_pid" 2>/dev/null || break; sleep 0.1; done
    local killed=0
    if kill -0 "$up_pid" 2>/dev/null; then
        echo "bench_flow.sh: the launcher did not exit within 10 s of SIGTERM; killing it" >&2
        kill -KILL "$up_pid" 2>/dev/null || true
        killed=1
    fi
    up_rc=0
    wait "$up_pid" 2>/dev/null || up_rc=$?
    # pods a killed launcher left behind (only processes that are still our pods)
    if [ "$killed" = 1 ]; then
        for p in $pids; do
            if grep -q "nflow-" "/proc/$p/cmdline" 2>/dev/null; then kill -KILL "$p" 2>/dev/null || true; fi
        done
    fi
    up_pid=
}

cleanup() {
    local rc=$?
    stop_flow
    if [ "$rc" != 0 ] && [ -s "$work/up.err" ]; then
        echo "--- nflow up stderr (last 20 lines) ---" >&2
        tail -n 20 "$work/up.err" >&2
    fi
    if [ "$keep" = 1 ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }
elapsed() { "$PY" -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.3f}')" "$1" "$2"; }
# nf SECONDS ARGS...: nflow with a bound on its run time.
nf() { local t=$1; shift; timeout "$t" "$nflow" "$@"; }

log "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"

# --- 1. data -------------------------------------------------------------------
log "data: $n x $d"
t0=$(now)
"$PY" "$anchors/flat_anchors.py" gen "$n" "$d" "$work/base.f32"
"$PY" - "$work/base.f32" "$work/base.fvecs" "$d" <<'PY'
import sys
import numpy as np
src, dst, d = sys.argv[1], sys.argv[2], int(sys.argv[3])
a = np.memmap(src, dtype=np.float32, mode="r").reshape(-1, d)
head = np.array([d], dtype=np.int32).view(np.float32)[0]
with open(dst, "wb") as f:
    for i in range(0, a.shape[0], 65536):
        b = a[i:i + 65536]
        o = np.empty((b.shape[0], d + 1), dtype=np.float32)
        o[:, 0] = head
        o[:, 1:] = b
        o.tofile(f)
PY
"$PY" -c "
import sys, numpy as np
np.random.default_rng(1).standard_normal((int(sys.argv[1]), int(sys.argv[2])), dtype=np.float32).tofile(sys.argv[3])" \
    "$q8" "$d" "$work/q.f32"
head -c $((d * 4)) "$work/q.f32" > "$work/q1.f32"
log "data ready in $(elapsed "$t0" "$(now)") s"

# --- 2. indexing: in-process and through the flow, in interleaved rounds -------
security=
keyopt=()
if [ "$curve" = 1 ]; then
    security="security: {keys: $work/keys}"
    keyopt=(--key "$work/keys/client.key")
fi
cat > "$work/flow.yml" <<YML
# written by tools/bench_flow.sh
version: 1
name: benchflow
$security
gateway: {host: 127.0.0.1, port: 0, with: {timeout_ms: 60000}}
pods:
  - name: indexer
    uses: indexer
    shards: 2
    with: {dim: $d, metric: l2, vectors: $vectors, threads: $threads}
  - name: reducer
    uses: reducer
YML
if [ "$curve" = 1 ]; then
    log "flow: CurveZMQ on every link (nflow keys)"
    nf 60 keys "$work/flow.yml" >/dev/null
fi

# A fresh flow on an empty workspace; sets up_pid and gateway.
start_flow() {
    rm -rf "$work/ws"
    "$nflow" up "$work/flow.yml" --workspace "$work/ws" > "$work/up.out" 2> "$work/up.err" &
    up_pid=$!
    gateway=
    for _ in $(seq 600); do
        gateway=$(sed -n 's/^ready gateway=//p' "$work/up.out" 2>/dev/null || true)
        [ -n "$gateway" ] && break
        kill -0 "$up_pid" 2>/dev/null || { echo "bench_flow.sh: nflow up exited before ready" >&2; exit 1; }
        sleep 0.1
    done
    [ -n "$gateway" ] || { echo "bench_flow.sh: the flow was not ready within 60 s" >&2; exit 1; }
    log "flow ready: gateway $gateway"
}

# CPU seconds (user + system, all threads) of every pod of the running
# flow, as "name=seconds" words.
pod_cpu() {
    "$PY" - "$work/ws/flow.state" <<'PY'
import json, os, sys
hz = os.sysconf("SC_CLK_TCK")
for p in json.load(open(sys.argv[1]))["pods"]:
    try:
        f = open(f"/proc/{p['pid']}/stat").read().rsplit(")", 1)[1].split()
        print(f"{p['name']}={(int(f[11]) + int(f[12])) / hz:.2f}")
    except (OSError, KeyError, IndexError, ValueError):
        pass
PY
}

# Where the CPU goes: per round, the build's CPU seconds and the flow's per
# process (the client, each pod), so the indexing ratio can be read against
# the machine's cores.
TIMEFORMAT='%U %S'
build_times=
index_times=
: > "$work/cpu.txt"
for r in $(seq "$irounds"); do
    log "index round $r/$irounds: in-process segment build"
    rm -rf "$work/seg"
    t0=$(now)
    { time nf 600 segment build "$work/seg" --dim "$d" --metric l2 "$work/base.f32" > /dev/null; } \
        2> "$work/build.time"
    build_times="$build_times $(elapsed "$t0" "$(now)")"
    read -r bu bs < <(tail -n 1 "$work/build.time")
    stop_flow
    [ "${up_rc:-0}" = 0 ] || { echo "bench_flow.sh: nflow up exited with status $up_rc after SIGTERM" >&2; exit 1; }
    start_flow
    log "index round $r/$irounds: nflow index ($n vectors, batch $batch, $inflight in flight)"
    cpu0=$(pod_cpu)
    t0=$(now)
    { time out=$(nf 1800 index --gateway "$gateway" "${keyopt[@]}" --batch "$batch" \
                 --inflight "$inflight" "$work/base.fvecs" 2> "$work/index.err"); } 2> "$work/index.time"
    index_s=$(elapsed "$t0" "$(now)")
    index_times="$index_times $index_s"
    cpu1=$(pod_cpu)
    read -r cu cs < <(tail -n 1 "$work/index.time")
    # one line a round: build user sys, client user sys | pods before | pods after
    echo "$bu $bs $cu $cs |" $cpu0 "|" $cpu1 >> "$work/cpu.txt"
    [ "$out" = "indexed $n, rejected 0, failed 0" ] || { echo "bench_flow.sh: nflow index printed '$out'" >&2; exit 1; }
    rows_now=$(nf 30 status -f "$work/flow.yml" --workspace "$work/ws" --json \
               | "$PY" -c 'import json,sys; print(sum(json.loads(l).get("rows", 0) for l in sys.stdin))')
    [ "$rows_now" = "$n" ] || { echo "bench_flow.sh: the shards hold $rows_now rows, expected $n" >&2; exit 1; }
    log "indexed $n in $index_s s; shards hold $rows_now rows"
done

# --- 3. in-process scans over the last build, then searches ----------------------
log "in-process: truth (bench scan, all $q8 queries in one scan)"
scan_all=$(nf 600 bench scan "$work/seg" --queries "$work/q.f32" -q "$q8" -k "$k" --policy "$vectors" \
           --truth "$work/truth.ivecs")
echo "$scan_all" >&2
log "in-process: bench scan -q 1 --repeat $repeat"
scan_one=$(nf 600 bench scan "$work/seg" --queries "$work/q1.f32" -q 1 -k "$k" --repeat "$repeat" \
           --policy "$vectors")
echo "$scan_one" >&2

# The searches run in rounds, each round in-process, then 1 flow client, then
# C flow clients, so that a burst of other load on the machine hits all three
# alike; the table gives the median over the rounds.
: > "$work/rounds.txt"
for r in $(seq "$rounds"); do
    log "round $r/$rounds: in-process, $((q1 / rounds)) single queries (bench flow --segment)"
    line=$(nf 600 bench flow --segment "$work/seg" --queries "$work/q.f32" -n $((q1 / rounds)) \
           -k "$k" --warmup "$warm" --policy "$vectors" --truth "$work/truth.ivecs")
    echo "$line" >&2
    printf 'inproc\t%s\n' "$line" | head -1 >> "$work/rounds.txt"
    log "round $r/$rounds: flow, 1 client, $((q1 / rounds)) queries"
    line=$(nf 900 bench flow --gateway "$gateway" "${keyopt[@]}" --queries "$work/q.f32" --dim "$d" \
           -n $((q1 / rounds)) -c 1 -k "$k" --warmup "$warm" --truth "$work/truth.ivecs")
    echo "$line" >&2
    printf 'flow1\t%s\n' "$(echo "$line" | head -1)" "$(echo "$line" | sed -n 2p)" >> "$work/rounds.txt"
    log "round $r/$rounds: flow, $clients clients, $((q8 / rounds)) queries"
    line=$(nf 900 bench flow --gateway "$gateway" "${keyopt[@]}" --queries "$work/q.f32" --dim "$d" \
           -n $((q8 / rounds)) -c "$clients" -k "$k" --warmup "$warm" --truth "$work/truth.ivecs")
    echo "$line" >&2
    printf 'flowc\t%s\n' "$(echo "$line" | head -1)" "$(echo "$line" | sed -n 2p)" >> "$work/rounds.txt"
done

log "flow: stop (SIGTERM to the launcher)"
stop_flow
[ "$up_rc" = 0 ] || { echo "bench_flow.sh: nflow up exited with status $up_rc after SIGTERM" >&2; exit 1; }

log "in-process: single queries over the flow's shard 0 ($threads threads)"
shard0=$(nf 600 bench flow --segment "$work/ws/indexer/shard-0" --queries "$work/q.f32" \
         -n $((q1 / rounds)) -k "$k" --warmup "$warm" --policy "$vectors" --threads "$threads")
echo "$shard0" >&2

# --- 5. the table --------------------------------------------------------------
"$PY" - "$n" "$d" "$k" "$clients" "$batch" "$inflight" "$build_times" "$index_times" \
      "$work/rounds.txt" "$scan_one" "$scan_all" "$(nproc)" "$repeat" "$vectors" "$threads" "$shard0" \
      "$curve" "$work/cpu.txt" <<'PY'
import statistics, sys
n, d, k, c, batch, inflight = map(int, sys.argv[1:7])
# indexing: per round, the build's and the flow's seconds; medians, and each round's ratio
builds, indexes = [float(x) for x in sys.argv[7].split()], [float(x) for x in sys.argv[8].split()]
build_s, index_s = statistics.median(builds), statistics.median(indexes)
iratios = [b / i for b, i in zip(builds, indexes)]
# CPU seconds per round: the build's, and the flow's by process (client, pods)
cpu_build, cpu_flow = [], []
for line in open(sys.argv[18]):
    head, before, after = line.split("|")
    bu, bs, cu, cs = map(float, head.split())
    cpu_build.append(bu + bs)
    b = dict(w.split("=") for w in before.split())
    a = dict(w.split("=") for w in after.split())
    per = {"client": cu + cs}
    for name in a:
        role = name.split("/")[0]
        per[role] = per.get(role, 0.0) + float(a[name]) - float(b.get(name, 0))
    cpu_flow.append(per)
def kv(line):
    return {a: b for a, b in (t.split("=", 1) for t in line.split() if "=" in t)}
one, allq = kv(sys.argv[10]), kv(sys.argv[11])
cores, repeat, vectors, threads = sys.argv[12], int(sys.argv[13]), sys.argv[14], sys.argv[15]
shard0 = kv(sys.argv[16])
runs = {"inproc": [], "flow1": [], "flowc": []}
routes = {"flow1": [], "flowc": []}
for raw in open(sys.argv[9]):
    kind, line = raw.rstrip("\n").split("\t", 1)
    if line.startswith("route p50_ms:"):
        routes[kind].append(line.split(":", 1)[1].strip())
    elif line.strip():
        runs[kind].append(kv(line))
med = lambda kind, key: statistics.median(float(m[key]) for m in runs[kind])
rounds = len(runs["inproc"])
ip50 = med("inproc", "p50_ms")
rate1 = 1000.0 / ip50
# per round: flow p50 - in-process p50, and C-client q/s over the in-process 1/p50
diffs = [float(f["p50_ms"]) - float(i["p50_ms"]) for f, i in zip(runs["flow1"], runs["inproc"])]
ratios = [float(f["qps"]) * float(i["p50_ms"]) / 1000.0 for f, i in zip(runs["flowc"], runs["inproc"])]
diff, ratio = statistics.median(diffs), statistics.median(ratios)
def median_route(kind):
    # the route line of the round whose p50 is the median one
    order = sorted(range(len(runs[kind])), key=lambda i: float(runs[kind][i]["p50_ms"]))
    return routes[kind][order[len(order) // 2]] if routes[kind] else "-"
print(("links: CurveZMQ (security: keys)\n" if sys.argv[17] == "1" else "links: plain TCP\n") +
      f"nflow flow benchmark: {n} x {d} float32, l2, k={k}; flow = gateway -> router -> "
      f"2 indexer shards -> reducer (no encoder); vectors: {vectors}; {cores} cores;\n"
      f"scan threads: {threads if threads != '0' else 'all cores'} per shard in the flow, all cores "
      f"in-process; searches: median of {rounds} interleaved rounds")
print()
rows = [
    ("index: in-process segment build", f"{n / build_s:,.0f} vec/s", f"{build_s:.2f} s",
     f"median of {len(builds)} rounds: " + " ".join(f"{b:.2f}" for b in builds) + " s"),
    (f"index: through the flow (nflow index, batch {batch}, {inflight} in flight)",
     f"{n / index_s:,.0f} vec/s", f"{index_s:.2f} s",
     f"{statistics.median(iratios):.2f} x in-process rate (rounds: "
     + " ".join(f"{x:.2f}" for x in iratios) + ")"),
    ("search 1 client: p50 / p99 / mean",
     f"{med('flow1', 'p50_ms'):.2f} / {med('flow1', 'p99_ms'):.2f} / {med('flow1', 'mean_ms'):.2f} ms",
     f"{med('flow1', 'qps'):.1f} q/s", f"shard holds it {med('flow1', 'indexer_p50_ms'):.2f} ms (p50)"),
    (f"search {c} clients: p50 / p99",
     f"{med('flowc', 'p50_ms'):.2f} / {med('flowc', 'p99_ms'):.2f} ms", f"{med('flowc', 'qps'):.1f} q/s",
     f"shard holds it {med('flowc', 'indexer_p50_ms'):.2f} ms (p50)"),
    ("in-process single query: p50 / p99 / mean",
     f"{ip50:.2f} / {med('inproc', 'p99_ms'):.2f} / {med('inproc', 'mean_ms'):.2f} ms",
     f"{rate1:.1f} q/s (1/p50)", "nflow bench flow --segment"),
    (f"in-process single query over the flow's shard 0 alone",
     f"{float(shard0['p50_ms']):.2f} / {float(shard0['p99_ms']):.2f} / {float(shard0['mean_ms']):.2f} ms",
     f"{float(shard0['qps']):.1f} q/s", f"{n // 2} rows, {threads} thread(s), after the flow stopped"),
    (f"in-process bench scan q=1: first / best of {repeat}",
     f"{1000 * float(one['query_s']):.2f} / {1000 * float(one['best_s']):.2f} ms", "",
     "nflow bench scan -q 1 --repeat"),
    (f"in-process bench scan q={allq['q']} (one shared scan)", f"{float(allq['query_s']):.3f} s",
     f"{float(allq['qps']):.1f} q/s", "upper bound of sharing"),
]
w0 = max(len(r[0]) for r in rows)
w1 = max(len(r[1]) for r in rows)
w2 = max(len(r[2]) for r in rows)
for r in rows:
    print(f"{r[0]:<{w0}}  {r[1]:>{w1}}  {r[2]:>{w2}}  {r[3]}")
print()
ok1 = "met" if diff < 1.0 else "NOT met"
ok2 = "met" if ratio > 1.0 else "NOT met"
fmt = lambda v, f: " ".join(f.format(x) for x in v)
print(f"flow p50 - in-process p50              = {diff:+.2f} ms  (target < 1 ms: {ok1}; rounds: "
      f"{fmt(diffs, '{:+.2f}')})")
print(f"{c}-client flow q/s / in-process 1/p50 = {ratio:.2f}      (target > 1: {ok2}; rounds: "
      f"{fmt(ratios, '{:.2f}')})")
rec = lambda kind: min((m.get("recall", "-") for m in runs[kind]), default="-")
print(f"recall@{k} vs in-process truth (worst round): 1 client {rec('flow1')}, {c} clients "
      f"{rec('flowc')}, in-process {rec('inproc')}")
print(f"route p50 ms, 1 client:  {median_route('flow1')}")
print(f"route p50 ms, {c} clients: {median_route('flowc')}")
errs = sum(int(m["errors"]) + int(m["partial"]) for kind in ("flow1", "flowc") for m in runs[kind])
print(f"errors + partial answers: {errs}")
# the indexing's CPU budget: medians over the rounds, next to what the cores allow
roles = sorted({r for per in cpu_flow for r in per}, key=lambda r: (r != "client", r))
flow_cpu = statistics.median(sum(per.values()) for per in cpu_flow)
print(f"index CPU seconds (user + system, median of {len(cpu_build)} rounds): build "
      f"{statistics.median(cpu_build):.2f}; flow {flow_cpu:.2f} = "
      + " + ".join(f"{r} {statistics.median(per.get(r, 0.0) for per in cpu_flow):.2f}"
                   for r in roles)
      + f"; on {cores} cores the flow needs >= {flow_cpu / int(cores):.2f} s of wall time")
PY
log "done"
