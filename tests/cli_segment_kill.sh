#!/usr/bin/env bash
# nflow segment build SIGKILLed at random instants: its appends are
# pipelined (a batch is synced by the segment's thread while the next one is
# read and written, nf_segment_append_start), so a kill lands in either
# half.  After each kill the segment opens and verifies, holds a whole
# number of batches (plus the document it was created with), and every
# stored row is its input row: a sample of them, searched for, finds
# itself (distance ~0) under its own id.  A build run to the end after the
# kills stores every row.
set -euo pipefail

NFLOW=${NFLOW_BIN:?NFLOW_BIN not set}
PY=${PYTHON:-/usr/bin/python3}
T=$(mktemp -d "${TMPDIR:-/tmp}/nflow-cli-segment-kill.XXXXXX")
pid=
trap '[ -z "$pid" ] || kill -KILL "$pid" 2>/dev/null || true; rm -rf "$T"' EXIT
cd "$T"

fail() { echo "FAIL: $*" >&2; exit 1; }

N=60000 D=16 BATCH=100
"$PY" - "$N" "$D" <<'EOF'
import json, sys
import numpy as np
n, d = int(sys.argv[1]), int(sys.argv[2])
np.random.default_rng(11).standard_normal((n, d)).astype(np.float32).tofile("base.f32")
with open("first.jsonl", "w") as f:
    f.write(json.dumps({"id": "first", "vector": [0.25] * d}) + "\n")
EOF

# check ROWS: the stored rows are the first ROWS - 1 input rows, ids "0"...
check() {
    local rows=$1
    "$PY" - "$rows" "$D" <<'EOF' > q.f32
import sys
import numpy as np
rows, d = int(sys.argv[1]), int(sys.argv[2])
x = np.fromfile("base.f32", np.float32).reshape(-1, d)
stored = rows - 1
pick = sorted(set([0, stored - 1] + list(np.random.default_rng(rows).integers(0, stored, 40))))
np.savetxt("want.txt", pick, fmt="%d")
sys.stdout.buffer.write(x[pick].tobytes())
EOF
    "$NFLOW" segment search seg --queries q.f32 -k 1 --json > got.json
    "$PY" - <<'EOF' || fail "rows differ from the input (rows $rows)"
import json
import numpy as np
want = np.loadtxt("want.txt", dtype=np.int64, ndmin=1)
got = [json.loads(l) for l in open("got.json")]
assert len(got) == len(want), (len(got), len(want))
for w, g in zip(want, got):
    m = g["matches"][0]
    assert m["id"] == str(w) and abs(m["score"]) < 1e-3, (w, m)
EOF
}

kills=0 mid=0
for round in 1 2 3 4 5 6 7 8; do
    rm -rf seg
    "$NFLOW" segment build seg first.jsonl > /dev/null
    "$NFLOW" segment build seg base.f32 --dim "$D" --batch "$BATCH" > build.out 2> build.err &
    pid=$!
    sleep "$("$PY" -c "import random; print(random.uniform(0.02, 0.6))")"
    kill -KILL "$pid" 2>/dev/null && kills=$((kills + 1)) || true
    wait "$pid" 2>/dev/null || true
    pid=
    "$NFLOW" segment verify seg > /dev/null || fail "round $round: verify after the kill"
    rows=$("$NFLOW" segment info seg | sed -n 's/^rows: *//p')
    [ -n "$rows" ] && [ "$rows" -ge 1 ] && [ "$rows" -le $((N + 1)) ] \
        || fail "round $round: $rows rows"
    [ $(((rows - 1) % BATCH)) -eq 0 ] || [ "$rows" -eq $((N + 1)) ] \
        || fail "round $round: $rows rows is not 1 + whole batches of $BATCH"
    if [ "$rows" -gt 1 ]; then
        check "$rows"
        [ "$rows" -eq $((N + 1)) ] || mid=$((mid + 1))
    fi
done
[ "$kills" -ge 4 ] && [ "$mid" -ge 2 ] || fail "only $kills kills, $mid in the middle of a build"

# a build to the end: every row (the kill test's segment, appended again:
# the same ids replace the rows, so the live count is N + 1)
rm -rf seg
"$NFLOW" segment build seg first.jsonl > /dev/null
"$NFLOW" segment build seg base.f32 --dim "$D" --batch "$BATCH" | grep -q "$N rows" \
    || fail "the build does not report $N rows"
check $((N + 1))
"$NFLOW" segment verify seg > /dev/null || fail "verify after a whole build"

echo "cli_segment_kill: ok ($kills kills, $mid mid-build)"
