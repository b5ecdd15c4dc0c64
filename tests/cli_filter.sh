#!/usr/bin/env bash
# nflow segment build --field / search --filter --fields / info / compact:
# a filtered search returns numpy's top-k over the rows the filter keeps
# (JSONL fields, and a .f32 with --fields-file); --fields prints the values;
# a bad filter or field exits 2 naming line:col and the field; a document
# with a wrong-typed value stops the build naming file:line, id and field;
# changing a field's type is refused; compact drops deleted rows and keeps
# the answers.
set -euo pipefail

NFLOW=${NFLOW_BIN:?NFLOW_BIN not set}
PY=${PYTHON:-/usr/bin/python3}
T=$(mktemp -d "${TMPDIR:-/tmp}/nflow-cli-filter.XXXXXX")
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

"$PY" - <<'EOF'
import json
import numpy as np
n, d = 3000, 16
rng = np.random.default_rng(7)
x = rng.standard_normal((n, d)).astype(np.float32)
q = np.random.default_rng(1).standard_normal((5, d)).astype(np.float32)
year = rng.integers(1980, 2025, n)
genre = rng.choice(["scifi", "drama", "comedy"], n)
with open("docs.jsonl", "w") as f, open("fields.jsonl", "w") as g:
    for i in range(n):
        doc = {"id": str(i), "vector": x[i].tolist(), "text": f"doc {i}"}
        fld = {}
        if i % 10:
            fld["year"] = int(year[i])
        fld["genre"] = str(genre[i])
        fld["labels"] = ["a"] if i % 3 == 0 else ["b", "c"]
        fld["when"] = f"2020-01-{1 + i % 28:02d}T00:00:00Z"
        doc.update(fld)
        f.write(json.dumps(doc) + "\n")
        g.write(json.dumps(fld) + "\n")
x.tofile("base.f32")
with open("q.jsonl", "w") as f:
    for v in q:
        f.write(json.dumps({"vector": v.tolist()}) + "\n")
keep = np.array([(i % 10 != 0) and year[i] >= 2000 and genre[i] in ("scifi", "drama") for i in range(n)])
idx = np.nonzero(keep)[0]
dist = (q * q).sum(1)[:, None] - 2 * q @ x[idx].T + (x[idx] * x[idx]).sum(1)[None, :]
top = idx[np.argsort(dist, 1, kind="stable")[:, :10]]
with open("truth.txt", "w") as f:
    for row in top:
        f.write(" ".join(str(r) for r in row) + "\n")
EOF

F='year >= 2000 and genre in ["scifi", "drama"]'
check() {   # check SEGDIR: the filtered top-10 ids equal numpy's
    "$NFLOW" segment search "$1" --queries q.jsonl -k 10 --json --filter "$F" > res.jsonl
    "$PY" -c '
import json, sys
got = [" ".join(m["id"] for m in json.loads(l)["matches"]) for l in open("res.jsonl")]
want = [l.strip() for l in open("truth.txt")]
sys.exit(0 if got == want else 1)' || fail "$1: filtered results differ from numpy"
}

"$NFLOW" segment build s1 docs.jsonl --field year:int --field genre:keyword \
    --field 'labels:keyword[]' --field when:datetime > /dev/null
check s1
"$NFLOW" segment build s2 base.f32 --dim 16 --field year:int --field genre:keyword \
    --field 'labels:keyword[]' --field when:datetime:memory --fields-file fields.jsonl > /dev/null
check s2

"$NFLOW" segment search s1 --queries q.jsonl -k 3 --json --filter 'labels contains "a"' \
    --fields year,labels,when > res.jsonl
grep -q '"labels":\["a"\]' res.jsonl || fail "--fields: labels not printed"
grep -q '"when":"2020-01-' res.jsonl || fail "--fields: datetime not printed"
"$NFLOW" segment info s1 | grep -qE 'field: +genre +keyword +mmap \(3 keywords\)' || fail "info lists no fields"

expect 2 "filter:1:9: 'year' is an int field; \"2000\" is a string" \
    "$NFLOW" segment search s1 --queries q.jsonl --filter 'year >= "2000"'
expect 2 "'yeer' is not a field" "$NFLOW" segment search s1 --queries q.jsonl --filter 'yeer > 1'
expect 2 "--fields: 'nope' is not a field" "$NFLOW" segment search s1 --queries q.jsonl --fields nope
echo '{"id": "z", "vector": [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16], "year": 1.5}' > bad.jsonl
expect 1 "bad.jsonl:1: id \"z\": field 'year' is an int field; got a real" \
    "$NFLOW" segment build s1 bad.jsonl
expect 1 "field 'year' is int in the segment, declared float" \
    "$NFLOW" segment build s1 docs.jsonl --field year:float --field genre:keyword
expect 2 "--field: field 'x:int8'" "$NFLOW" segment build s3 docs.jsonl --field x:int8

# upserts leave deleted rows; compact drops them and the answers stay
head -300 docs.jsonl > again.jsonl
"$NFLOW" segment build s1 again.jsonl > /dev/null
"$NFLOW" segment info s1 | grep -q '^deleted:  300' || fail "upserts did not delete"
"$NFLOW" segment compact s1 | grep -q '3000 live rows kept, 300 deleted rows dropped' || fail "compact"
"$NFLOW" segment info s1 | grep -q '^deleted:  0' || fail "compact left deleted rows"
"$NFLOW" segment verify s1 > /dev/null
[ ! -e s1.compact~ ] || fail "compact left its temporary directory"
# compacted rows are in a new order: compare as sets of ids per query
"$NFLOW" segment search s1 --queries q.jsonl -k 10 --json --filter "$F" > res.jsonl
"$PY" -c '
import json, sys
got = [sorted(m["id"] for m in json.loads(l)["matches"]) for l in open("res.jsonl")]
want = [sorted(l.split()) for l in open("truth.txt")]
sys.exit(0 if got == want else 1)' || fail "compacted segment answers differently"
echo "cli_filter: ok"
