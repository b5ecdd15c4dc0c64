#!/usr/bin/env bash
# nflow segment build|search|info|verify|repair: segments built from .fvecs,
# .f32 and JSONL give the exact numpy top-k for every metric; info reports
# what was built; verify names the chunk and rows of a flipped byte; a
# damaged commit slot is reported and repair puts the rows back; bad input
# (missing file, wrong dim queries, corrupt or partial segment, bad usage)
# gives a clear message and exit status 1 or 2, never a crash.
set -euo pipefail

NFLOW=${NFLOW_BIN:?NFLOW_BIN not set}
PY=${PYTHON:-/usr/bin/python3}
T=$(mktemp -d "${TMPDIR:-/tmp}/nflow-cli-segment.XXXXXX")
trap 'rm -rf "$T"' EXIT
cd "$T"

fail() { echo "FAIL: $*" >&2; exit 1; }

# expect STATUS PATTERN CMD...: CMD exits with STATUS and its stderr matches PATTERN
expect() {
    local want=$1 pattern=$2 rc=0
    shift 2
    "$@" >out.txt 2>err.txt || rc=$?
    [ "$rc" -eq "$want" ] || { cat err.txt >&2; fail "'$*' exited $rc, expected $want"; }
    grep -qE -- "$pattern" err.txt || { cat err.txt >&2; fail "'$*': stderr lacks /$pattern/"; }
}

# --- data: 2000 x 24 base vectors, 25 queries (numpy default_rng(1)) ----------
"$PY" - <<'EOF'
import json
import numpy as np
n, d = 2000, 24
x = np.random.default_rng(7).standard_normal((n, d)).astype(np.float32)
q = np.random.default_rng(1).standard_normal((25, d)).astype(np.float32)
def fvecs(path, a):
    rec = np.empty((a.shape[0], a.shape[1] + 1), dtype=np.int32)
    rec[:, 0] = a.shape[1]
    rec[:, 1:] = a.view(np.int32)
    rec.tofile(path)
fvecs("base.fvecs", x)
x.tofile("base.f32")
fvecs("queries.fvecs", q)
q.tofile("queries.f32")
np.save("base.npy", x)
np.save("queries.npy", q)
with open("base.jsonl", "w") as f:
    for i, v in enumerate(x):
        doc = {"id": "doc-%d" % i, "vector": [float(t) for t in v]}
        if i % 2 == 0:
            doc["text"] = "text of document %d" % i
            doc["tags"] = {"parity": "even", "i": i}
        f.write(json.dumps(doc) + "\n")
with open("queries.jsonl", "w") as f:
    for i, v in enumerate(q):
        f.write(json.dumps({"id": "q%d" % i, "vector": [float(t) for t in v]}) + "\n")
fvecs("wrongdim.fvecs", q[:, :16].copy())
EOF

# check.py RESULTS METRIC K PREFIX: the --json lines equal the exact numpy
# top-k (ids; scores within float tolerance; a swap only between near-ties).
cat >check.py <<'EOF'
import json, sys
import numpy as np
path, metric, k, prefix = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
x = np.load("base.npy").astype(np.float64)
q = np.load("queries.npy").astype(np.float64)
if metric == "l2":
    s = (q * q).sum(1)[:, None] - 2 * q @ x.T + (x * x).sum(1)[None, :]
    order = np.argsort(s, axis=1, kind="stable")
elif metric == "ip":
    s = q @ x.T
    order = np.argsort(-s, axis=1, kind="stable")
else:
    s = (q @ x.T) / np.linalg.norm(q, axis=1)[:, None] / np.linalg.norm(x, axis=1)[None, :]
    order = np.argsort(-s, axis=1, kind="stable")
lines = [json.loads(l) for l in open(path)]
assert len(lines) == len(q), "%d result lines for %d queries" % (len(lines), len(q))
swaps = 0
for i, res in enumerate(lines):
    assert res["query"] == i, res
    m = res["matches"]
    assert len(m) == k, "query %d: %d matches" % (i, len(m))
    rows = [int(t["id"][len(prefix):]) for t in m]
    want = list(order[i, :k])
    for r, t in zip(rows, m):
        assert abs(t["score"] - s[i, r]) <= 1e-4 * max(1.0, abs(s[i, r])), \
            "query %d id %s: score %r, numpy %r" % (i, t["id"], t["score"], s[i, r])
    if rows != want:
        # allowed only where numpy's own scores are within float32 rounding
        for r, w in zip(rows, want):
            if r != w:
                assert abs(s[i, r] - s[i, w]) <= 1e-4 * max(1.0, abs(s[i, w])), \
                    "query %d: ids %s, numpy %s" % (i, rows, want)
                swaps += 1
print("ok %s: %d queries, k=%d, %d near-tie swaps" % (metric, len(lines), k, swaps))
EOF

# --- build + search for every metric, fvecs and f32 agree ----------------------
for metric in l2 ip cosine; do
    "$NFLOW" segment build "seg-$metric" base.fvecs --metric "$metric" --batch 300 >build.txt
    grep -qE "^built seg-$metric: 2000 rows \(dim 24, metric $metric\) in [0-9.]+ s$" build.txt ||
        fail "build line: $(cat build.txt)"
    "$NFLOW" segment search "seg-$metric" --queries queries.fvecs -k 10 --json >"res-$metric.json"
    "$PY" check.py "res-$metric.json" "$metric" 10 ""

    "$NFLOW" segment build "f32-$metric" base.f32 --dim 24 --metric "$metric" >/dev/null
    "$NFLOW" segment search "f32-$metric" --queries queries.f32 -k 10 --json >"f32-$metric.json"
    cmp -s "res-$metric.json" "f32-$metric.json" || fail "$metric: .f32 segment differs from .fvecs"
done

# memory policies, warm-up and one thread give the same answer
"$NFLOW" segment search seg-l2 --queries queries.fvecs -k 10 --json --threads 1 \
    --vectors memory --payloads memory --warmup >mem.json
cmp -s res-l2.json mem.json || fail "--vectors memory / --threads 1 changed the results"

# readable output: one block per query, rank 1 is the exact best
"$NFLOW" segment search seg-l2 --queries queries.fvecs -k 3 >readable.txt 2>/dev/null
[ "$(grep -c '^query ' readable.txt)" -eq 25 ] || fail "readable: expected 25 query blocks"
best=$("$PY" -c "import json; print(json.loads(open('res-l2.json').readline())['matches'][0]['id'])")
sed -n 2p readable.txt | grep -qE "^ +1\. $best " || fail "readable rank 1: $(sed -n 2p readable.txt)"

# --- JSONL: ids, text and tags come back; queries from JSONL ------------------
"$NFLOW" segment build seg-json base.jsonl --metric l2 >/dev/null
"$NFLOW" segment search seg-json --queries queries.jsonl -k 10 --json >res-json.json
"$PY" check.py res-json.json l2 10 doc-
"$PY" - <<'EOF'
import json
for line in open("res-json.json"):
    for m in json.loads(line)["matches"]:
        i = int(m["id"][4:])
        if i % 2 == 0:
            assert m["text"] == "text of document %d" % i, m
            assert m["tags"] == {"parity": "even", "i": str(i)}, m
        else:
            assert "text" not in m and "tags" not in m, m
print("ok jsonl payloads")
EOF

# --- info, and appending again (upsert by id: the old rows are tombstoned) ---
"$NFLOW" segment info seg-l2 >info.txt
for want in "^dim: +24$" "^metric: +l2$" "^rows: +2000$" "^deleted: +0$" "^live: +2000$" \
            "^version: +2$" "^commit: +[0-9]+$" "^notice: +none$" \
            "^file: +vectors.nfv +[0-9]+ bytes" "^file: +deletes.nfd " "^file: +checksums.nfc "; do
    grep -qE "$want" info.txt || { cat info.txt >&2; fail "info lacks /$want/"; }
done
"$NFLOW" segment build seg-l2 base.fvecs >/dev/null    # metric taken from the segment
"$NFLOW" segment info seg-l2 >info2.txt
grep -qE "^rows: +4000$" info2.txt && grep -qE "^deleted: +2000$" info2.txt &&
    grep -qE "^live: +2000$" info2.txt || { cat info2.txt >&2; fail "info after re-build"; }
"$NFLOW" segment search seg-l2 --queries queries.fvecs -k 10 --json >res-again.json
"$PY" check.py res-again.json l2 10 ""

# --- verify: every chunk; a flipped byte is named by file, chunk and rows -----
"$NFLOW" segment verify seg-l2 >verify.txt
grep -qE "^verified seg-l2: [0-9]+ bytes, every chunk matches" verify.txt ||
    { cat verify.txt >&2; fail "verify of a good segment"; }
cp -r seg-ip seg-flip
"$PY" - <<'EOF'
with open("seg-flip/vectors.nfv", "r+b") as f:
    f.seek((2 << 20) + 96 * 1500 + 5)      # row 1500 of 2000 x 24 float32
    b = f.read(1)
    f.seek(-1, 1)
    f.write(bytes([b[0] ^ 0x40]))
EOF
expect 1 "nflow segment verify: .*vectors\.nfv: chunk 0 \(body bytes 0\.\.192000, rows 0\.\.1999\) fails its checksum" \
    "$NFLOW" segment verify seg-flip
expect 1 "nflow segment search: .*vectors\.nfv: chunk 0 .*fails its checksum" \
    "$NFLOW" segment search seg-flip --queries queries.fvecs -k 3

# --- a flipped byte in the current commit slot: reported, kept, repaired -----
cp -r seg-l2 seg-slot
"$PY" - <<'EOF'
import struct
with open("seg-slot/vectors.nfv", "r+b") as f:
    page = f.read(4096)
    seq0, seq1 = struct.unpack_from("<Q", page, 24)[0], struct.unpack_from("<Q", page, 2048 + 24)[0]
    off = 0 if seq0 > seq1 else 2048
    f.seek(off + 40)
    f.write(bytes([page[off + 40] ^ 0x01]))
EOF
"$NFLOW" segment info seg-slot >info3.txt 2>info3.err
grep -qE "^rows: +2000$" info3.txt && grep -qE "^notice: .*commit slot [01] failed its check" info3.txt &&
    grep -qE "notice: .*2000 rows .* lie beyond it" info3.err ||
    { cat info3.txt info3.err >&2; fail "info on a damaged slot"; }
"$NFLOW" segment repair seg-slot >repair.txt
grep -qE "copied to .*recovered/seq-" repair.txt && grep -qE "re-committed 2000," repair.txt &&
    grep -qE "^removed .*recovered; the segment has 4000 rows, 2000 live$" repair.txt ||
    { cat repair.txt >&2; fail "repair"; }
[ ! -e seg-slot/recovered ] || fail "repair left recovered/"
"$NFLOW" segment info seg-slot >info4.txt
grep -qE "^rows: +4000$" info4.txt && grep -qE "^notice: +none$" info4.txt ||
    { cat info4.txt >&2; fail "info after repair"; }
"$NFLOW" segment verify seg-slot >/dev/null
"$NFLOW" segment search seg-slot --queries queries.fvecs -k 10 --json >res-repaired.json
"$PY" check.py res-repaired.json l2 10 ""
"$NFLOW" segment repair seg-slot | grep -q "nothing to repair" || fail "repair with nothing to do"

# --- a directory holding part of a segment is refused, nothing truncated -----
cp -r seg-l2 seg-partial
rm seg-partial/vectors.nfv
ls -l seg-partial >before.txt
expect 1 "nflow segment build: .*vectors\.nfv is missing" "$NFLOW" segment build seg-partial base.fvecs
expect 1 "nflow segment info: .*vectors\.nfv is missing" "$NFLOW" segment info seg-partial
ls -l seg-partial >after.txt
cmp -s before.txt after.txt || fail "a partial segment was changed"

# --- errors: clear message, status 1 (runtime) or 2 (usage), no crash ---------
expect 1 "nflow segment build: .*nosuch\.fvecs" "$NFLOW" segment build seg-x nosuch.fvecs
expect 1 "nflow segment search: .*nosuch\.fvecs" \
    "$NFLOW" segment search seg-l2 --queries nosuch.fvecs -k 3
expect 1 "nflow segment search: .*wrongdim\.fvecs.*dim 16.*dim 24" \
    "$NFLOW" segment search seg-l2 --queries wrongdim.fvecs -k 3
expect 1 "nflow segment build: .*dim" "$NFLOW" segment build seg-l2 wrongdim.fvecs
expect 1 "nflow segment build: .*metric" "$NFLOW" segment build seg-l2 base.fvecs --metric ip
expect 1 "nflow segment search: .*no-such-seg" \
    "$NFLOW" segment search no-such-seg --queries queries.fvecs
printf '{"id": "a", "vector": [1, 2]}\n{"id": "b", "vector": [1, 2, 3]}\n' >bad.jsonl
expect 1 "bad\.jsonl:2: vector has 3 values, expected 2" "$NFLOW" segment build seg-bad bad.jsonl
printf '{"id": "a", "vector": [1, 2]}\n{"id": "b" "vector": [1, 2]}\n' >bad2.jsonl
expect 1 "bad2\.jsonl:2:[0-9]+: bad JSON" "$NFLOW" segment build seg-bad2 bad2.jsonl
printf '{"id": "a", "text": "no vector"}\n' >novec.jsonl
expect 1 "novec\.jsonl:1: .*vector" "$NFLOW" segment build seg-novec novec.jsonl
head -c 950 base.fvecs >cut.fvecs
expect 1 "cut\.fvecs: record 9 \(byte 900\): truncated: 50 of 100 bytes" "$NFLOW" segment build seg-cut cut.fvecs

# corrupt segment: overwrite the vectors file header -> clear error naming it
cp -r seg-ip seg-corrupt
printf 'GARBAGE!GARBAGE!' | dd of=seg-corrupt/vectors.nfv bs=1 seek=0 conv=notrunc 2>/dev/null
printf 'GARBAGE!GARBAGE!' | dd of=seg-corrupt/vectors.nfv bs=1 seek=2048 conv=notrunc 2>/dev/null
expect 1 "nflow segment search: .*vectors\.nfv" \
    "$NFLOW" segment search seg-corrupt --queries queries.fvecs -k 3
expect 1 "nflow segment info: .*vectors\.nfv" "$NFLOW" segment info seg-corrupt
expect 1 "nflow segment build: .*vectors\.nfv" "$NFLOW" segment build seg-corrupt base.fvecs
# a truncated vectors body
cp -r seg-cosine seg-short
truncate -s 10000 seg-short/vectors.nfv
expect 1 "nflow segment search: .*vectors\.nfv" \
    "$NFLOW" segment search seg-short --queries queries.fvecs -k 3

# usage errors
expect 2 "usage" "$NFLOW" segment
expect 2 "unknown command 'frobnicate'" "$NFLOW" segment frobnicate
expect 2 "missing FILE" "$NFLOW" segment build only-dir
expect 2 "--metric: expected one of l2\|ip\|cosine, got 'manhattan'" "$NFLOW" segment build s base.fvecs --metric manhattan
expect 2 "--dim is required" "$NFLOW" segment build s base.f32
expect 2 "--dim: expected an integer in 1\.\.65536, got '0'" "$NFLOW" segment build s base.f32 --dim 0
expect 2 "unknown option '--bogus'" "$NFLOW" segment build s base.fvecs --bogus
expect 2 "--queries FILE is required" "$NFLOW" segment search seg-l2 -k 3
expect 2 "-k: expected an integer in 1\.\.100000, got 'x'" "$NFLOW" segment search seg-l2 --queries queries.fvecs -k x
expect 2 "--vectors: expected one of mmap\|memory, got 'disk'" "$NFLOW" segment search seg-l2 --queries queries.fvecs --vectors disk
expect 2 "needs a value" "$NFLOW" segment search seg-l2 --queries
expect 2 "missing DIR" "$NFLOW" segment info
expect 2 "missing DIR" "$NFLOW" segment verify
expect 2 "unexpected argument 'b'" "$NFLOW" segment repair a b
expect 2 "--batch: expected an integer in 1\.\.1000000, got '0'" \
    "$NFLOW" segment build s base.fvecs --batch=0
expect 2 "--format: expected one of fvecs\|f32\|jsonl, got 'csv'" \
    "$NFLOW" segment build s base.fvecs --format csv
for sub in build search info verify repair compact; do
    "$NFLOW" segment "$sub" --help | grep -q "usage: nflow segment $sub" || fail "$sub --help"
done
[ ! -e s ] || fail "a usage error created a segment"

echo "cli_segment: ok"
