#!/usr/bin/env bash
# Filtered exact search through a 2-shard flow with typed fields (issue 11):
# index JSONL whose top-level keys are the flow's fields (a wrong-typed one
# is rejected by id and field), search with --filter over every type and
# nulls and compare with numpy over the rows the filter keeps; --fields
# output (text and --json); a bad filter is refused by the gateway with
# filter:LINE:COL before any scan; a Python client speaking protocol 2
# (proto/README.md's example) sends a filtered search; `nflow compact`
# compacts every shard while searches go on; a compaction that takes longer
# than the router's dead_after_ms leaves the shard alive and answering,
# exact, and writes sent meanwhile are retried in, none lost.
set -euo pipefail
. "$(dirname "$0")/flow_lib.sh"

cat >"$TMP/flow.yml" <<YML
version: 1
name: e2e-filter
gateway: {with: {timeout_ms: 10000}}
pods:
  - name: indexer
    uses: indexer
    shards: 2
    with:
      dim: 16
      metric: l2
      fields:
        year: int
        price: float
        archived: bool
        genre: keyword
        labels: keyword[]
        day: datetime
  - name: reducer
    uses: reducer
YML

"$PY" - "$TMP" <<'PY'
import json, sys
import numpy as np
tmp = sys.argv[1]
rng = np.random.default_rng(11)
n = 1500
docs = rng.standard_normal((n, 16)).astype(np.float32)
queries = rng.standard_normal((8, 16)).astype(np.float32)
np.save(f"{tmp}/docs.npy", docs)
np.save(f"{tmp}/queries.npy", queries)
genres = ["scifi", "drama", "comedy", "noir"]
meta = []
with open(f"{tmp}/docs.jsonl", "w") as f:
    for i, v in enumerate(docs):
        d = {"id": f"doc-{i}", "vector": [float(x) for x in v]}
        m = {}
        if i % 10 != 3:
            m["year"] = 1950 + i % 70
        if i % 7 != 0:
            m["price"] = float(i % 100) / 4.0
        m["archived"] = bool(i % 3 == 0)
        if i % 11 != 5:
            m["genre"] = genres[i % 4]
        m["labels"] = [l for l, k in (("a", 2), ("b", 3), ("c", 5)) if i % k == 0]
        m["day"] = f"20{10 + i % 15:02d}-0{1 + i % 9}-1{i % 10}T12:00:00Z"
        d.update(m)
        meta.append(m)
        f.write(json.dumps(d) + "\n")
    # a wrong-typed value: rejected by id and field
    f.write(json.dumps({"id": "bad-year", "vector": [0.0] * 16, "year": "1999"}) + "\n")
json.dump(meta, open(f"{tmp}/meta.json", "w"))
with open(f"{tmp}/queries.fvecs", "wb") as f:
    for q in queries:
        np.array([16], dtype=np.int32).tofile(f)
        q.tofile(f)
PY

start_flow "$TMP/flow.yml"
F=(-f "$TMP/flow.yml" --workspace "$WS")

set +e
out=$("$NFLOW_BIN" index "${F[@]}" "$TMP/docs.jsonl" 2>"$TMP/index.err")
st=$?
set -e
[ "$out" = "indexed 1500, rejected 1, failed 0" ] || fail "index printed '$out' ($(cat "$TMP/index.err"))"
[ $st -eq 1 ] || fail "index with a rejected document exited $st"
grep -q "bad-year" "$TMP/index.err" && grep -q "year" "$TMP/index.err" \
  || fail "the wrong-typed document is not named: $(cat "$TMP/index.err")"

# check FILTER PYEXPR: the flow's answer equals numpy over the rows PYEXPR keeps
check() {
  local res="$TMP/res${TAG:-}.jsonl"
  "$NFLOW_BIN" search "${F[@]}" --queries "$TMP/queries.fvecs" -k 10 --json --batch "${BATCH:-64}" \
    --filter "$1" --fields year,genre,labels >"$res" \
    || fail "search --filter '$1' failed"
  "$PY" - "$TMP" "$2" "${3:-}" "$res" <<'PY' || fail "filter '$1': answers differ from numpy"
import json, sys
import numpy as np
tmp, expr, deleted, res = sys.argv[1], sys.argv[2], set(sys.argv[3].split()), sys.argv[4]
docs, queries = np.load(f"{tmp}/docs.npy"), np.load(f"{tmp}/queries.npy")
meta = json.load(open(f"{tmp}/meta.json"))
keep = np.array([i for i, m in enumerate(meta)
                 if f"doc-{i}" not in deleted and eval(expr, {}, {"m": m, "i": i})], dtype=int)
lines = [json.loads(l) for l in open(res)]
assert len(lines) == len(queries)
for qi, line in enumerate(lines):
    assert line["partial"] is False, line
    if len(keep) == 0:
        assert line["matches"] == [], line
        continue
    d = ((docs[keep] - queries[qi]) ** 2).sum(axis=1)
    order = np.argsort(d, kind="stable")[:10]
    want = [f"doc-{keep[j]}" for j in order]
    got = [m["id"] for m in line["matches"]]
    assert len(got) == len(want), (expr, got, want)
    # equal distances may swap: compare the distances, and ids where they differ
    for g, w, j in zip(got, want, order):
        gi = int(g.split("-")[1])
        assert gi in set(keep.tolist()), (expr, g)
        assert abs(((docs[gi] - queries[qi]) ** 2).sum() - d[j]) < 1e-3, (expr, g, w)
    for mt in line["matches"]:
        gi = int(mt["id"].split("-")[1])
        f = mt["fields"]
        assert f["year"] == meta[gi].get("year"), (mt, meta[gi])
        assert f["genre"] == meta[gi].get("genre"), (mt, meta[gi])
        assert sorted(f["labels"] or []) == sorted(meta[gi]["labels"]), (mt, meta[gi])
PY
}

check 'year >= 2000' '"year" in m and m["year"] >= 2000'
check 'year is null' '"year" not in m'
check 'price < 5.5 and not archived' '"price" in m and m["price"] < 5.5 and not m["archived"]'
check 'archived' 'm["archived"]'
check 'genre in ["scifi", "noir"]' 'm.get("genre") in ("scifi", "noir")'
check 'genre != "drama"' '"genre" in m and m["genre"] != "drama"'
check 'not genre == "drama"' 'm.get("genre") != "drama"'
check 'labels contains "b"' '"b" in m["labels"]'
check 'labels contains all ["a", "c"]' '"a" in m["labels"] and "c" in m["labels"]'
check 'labels contains any ["b", "c"] or year < 1960' '"b" in m["labels"] or "c" in m["labels"] or m.get("year", 9999) < 1960'
check 'day >= 2020-01-01 and day < 2023-01-01' '"2020" <= m["day"][:4] < "2023"'
check 'year == 1800' 'False'

# searches with different filters (and none) arriving together: each shard
# scans each filter's searches together, the unfiltered ones apart; every
# answer stays exact (one query per request, 4 requests in flight each)
pids=
TAG=a BATCH=1 check 'genre == "scifi"' 'm.get("genre") == "scifi"' & pids="$pids $!"
TAG=b BATCH=1 check 'year < 1980' '"year" in m and m["year"] < 1980' & pids="$pids $!"
TAG=c BATCH=1 check 'genre == "scifi"' 'm.get("genre") == "scifi"' & pids="$pids $!"
TAG=d BATCH=1 check 'year is not null or year is null' 'True' & pids="$pids $!"
for p in $pids; do wait "$p" || fail "concurrent filtered searches differ from numpy"; done

# with --gateway only, nflow index learns the fields from the gateway's PING answer
printf '%s\n' '{"id": "gw-1", "vector": [9,9,9,9,9,9,9,9,9,9,9,9,9,9,9,9], "genre": "western", "year": 1888}' \
  >"$TMP/gw.jsonl"
out=$("$NFLOW_BIN" index --gateway "$GATEWAY" "$TMP/gw.jsonl") || fail "index --gateway: $out"
out=$("$NFLOW_BIN" search --gateway "$GATEWAY" --queries "$TMP/queries.fvecs" -k 3 --json \
  --filter 'genre == "western" and year == 1888' --fields genre) || fail "search --gateway failed"
[ "$(echo "$out" | grep -c '"id":"gw-1".*"fields":{"genre":"western"}')" -eq 8 ] \
  || fail "the document indexed through --gateway lost its fields: $out"
out=$("$NFLOW_BIN" delete "${F[@]}" gw-1) || fail "delete gw-1: $out"

# text output carries the fields
"$NFLOW_BIN" search "${F[@]}" --queries "$TMP/queries.fvecs" -k 2 --filter 'genre == "noir"' \
  --fields genre,year >"$TMP/text.out" || fail "text search failed"
grep -q 'fields: {"genre":"noir","year":' "$TMP/text.out" || fail "text output without fields: $(head "$TMP/text.out")"

# bad filters: refused with where and what, before any scan
bad() {
  set +e
  "$NFLOW_BIN" search "${F[@]}" --queries "$TMP/queries.fvecs" --filter "$1" >/dev/null 2>"$TMP/bad.err"
  local st=$?
  set -e
  [ $st -eq 1 ] || fail "bad filter '$1' exited $st"
  grep -q -- "$2" "$TMP/bad.err" || fail "bad filter '$1': expected '$2', got: $(cat "$TMP/bad.err")"
}
bad 'year >= "2000"' "filter:1:9: 'year' is an int field"
bad 'nosuch == 1' "filter:1:1:"
bad 'year >= ' "filter:1:"
set +e
"$NFLOW_BIN" search "${F[@]}" --queries "$TMP/queries.fvecs" --fields nosuch >/dev/null 2>"$TMP/bad.err"
st=$?
set -e
[ $st -eq 1 ] && grep -q "'nosuch' is not a field" "$TMP/bad.err" || fail "unknown output field: $st $(cat "$TMP/bad.err")"

echo "flow_filter: filters OK"

# proto/README.md's Python example, as written there, against this flow
export PYTHONPATH="${NFLOW_BUILD_ROOT:?}/pods/python${PYTHONPATH:+:$PYTHONPATH}"
"$PY" - "$NFLOW_SOURCE_ROOT/proto/README.md" "$GATEWAY" "$TMP" <<'PY' || fail "the Python example of proto/README.md failed"
import json, re, sys
import numpy as np
readme, gateway, tmp = sys.argv[1:4]
text = open(readme).read()
sec = text[text.index("### Example: a filtered search from Python"):]
code = re.search(r"```python\n(.*?)```", sec, re.S).group(1)
lines = code.rstrip().splitlines()
assert lines[-1].startswith("print(search("), lines[-1]
ns = {}
exec("\n".join(lines[:-1]), ns)              # the snippet, without its last line
docs, queries = np.load(f"{tmp}/docs.npy"), np.load(f"{tmp}/queries.npy")
meta = json.load(open(f"{tmp}/meta.json"))
got = ns["search"](gateway, [float(x) for x in queries[0]], 'genre in ["scifi", "noir"]', ["genre"])
keep = np.array([i for i, m in enumerate(meta) if m.get("genre") in ("scifi", "noir")])
d = ((docs[keep] - queries[0]) ** 2).sum(axis=1)
want = [f"doc-{keep[j]}" for j in np.argsort(d, kind="stable")[:5]]
assert [g[0] for g in got] == want, (got, want)
assert all(json.loads(g[2])["genre"] in ("scifi", "noir") for g in got), got
try:
    ns["search"](gateway, [0.0] * 16, 'year >= "2000"', [])
    raise SystemExit("an ill-typed filter was answered")
except RuntimeError as e:
    assert str(e).startswith("filter:1:9: 'year' is an int field"), e
print("python example:", got[0])
PY
echo "flow_filter: python example OK"

# compaction through the flow while searches go on: delete 300 ids, compact
# every shard, searches stay exact and the shards hold fewer rows
del=$(seq 0 5 1499 | sed 's/^/doc-/')
out=$("$NFLOW_BIN" delete "${F[@]}" $del) || fail "delete failed: $out"
echo "$out" | grep -q "deleted 300" || fail "delete printed '$out'"
seg_rows() {  # physical rows of both shards' segments (deleted ones included)
  local n=0 r
  for d in "$WS"/indexer/shard-0 "$WS"/indexer/shard-1; do
    r=$("$NFLOW_BIN" segment info "$d" | sed -n 's/^rows: *//p')
    n=$((n + r))
  done
  echo $n
}
rows_before=$(seg_rows)
[ "$rows_before" -eq 1501 ] || fail "the shards hold $rows_before rows before compaction"
( for _ in $(seq 30); do
    "$NFLOW_BIN" search "${F[@]}" --queries "$TMP/queries.fvecs" -k 5 --filter 'year >= 1990' \
      --ids-only >/dev/null || { echo "search during compaction failed" >"$TMP/bg.fail"; exit 1; }
  done ) &
BG=$!
"$NFLOW_BIN" compact "${F[@]}" >"$TMP/compact.out" 2>"$TMP/compact.err" \
  || fail "compact failed: $(cat "$TMP/compact.out" "$TMP/compact.err")"
wait $BG || fail "$(cat "$TMP/bg.fail" 2>/dev/null) searches during the compaction failed"
cat "$TMP/compact.out"
[ "$(grep -c '^indexer/[01] *kept' "$TMP/compact.out")" -eq 2 ] || fail "compact printed: $(cat "$TMP/compact.out")"
"$PY" - "$TMP/compact.out" <<'PY' || fail "compact did not drop the 301 deleted rows: $(cat "$TMP/compact.out")"
import re, sys
kept = dropped = 0
for l in open(sys.argv[1]):
    m = re.search(r"kept (\d+) rows, dropped (\d+) deleted rows", l)
    kept += int(m.group(1)); dropped += int(m.group(2))
assert kept == 1200 and dropped == 301, (kept, dropped)   # gw-1 too
PY
ls -d "$WS"/indexer/shard-*.compact~ 2>/dev/null && fail "a compaction left its temporary directory"
rows_after=$(seg_rows)
[ "$rows_after" -eq 1200 ] || fail "the shards hold $rows_after rows after compaction"
check 'year >= 2000' '"year" in m and m["year"] >= 2000' "$del"
check 'labels contains "b" and not archived' '"b" in m["labels"] and not m["archived"]' "$del"
head -n 5 "$TMP/docs.jsonl" >"$TMP/again.jsonl"      # doc-0 was deleted: stored again
out=$("$NFLOW_BIN" index "${F[@]}" "$TMP/again.jsonl") || fail "index after compaction: $out"
[ "$out" = "indexed 5, rejected 0, failed 0" ] || fail "index after compaction printed '$out'"
check 'genre == "scifi"' 'm.get("genre") == "scifi"' "$(echo "$del" | grep -vx 'doc-0')"
echo "flow_filter: compaction OK (rows $rows_before -> $rows_after)"

# the schema is the segments': stopping the flow and starting it with a field
# changed is refused by name (the shard does not start); adding one is fine
stop_flow
sed 's/        year: int/        year: float/' "$TMP/flow.yml" >"$TMP/changed.yml"
set +e
timeout 60 "$NFLOW_BIN" up "$TMP/changed.yml" --workspace "$WS" >"$TMP/changed.out" 2>"$TMP/changed.err"
st=$?
set -e
[ $st -ne 0 ] || fail "a flow with a changed field started"
grep -q "year" "$TMP/changed.err" || fail "the refusal does not name the field: $(tail -5 "$TMP/changed.err")"
grep "year" "$TMP/changed.err" | head -2
sed 's/        day: datetime/        day: datetime\n        extra: int/' "$TMP/flow.yml" >"$TMP/added.yml"
start_flow "$TMP/added.yml"
"$NFLOW_BIN" search -f "$TMP/added.yml" --workspace "$WS" --queries "$TMP/queries.fvecs" -k 3 \
  --filter 'extra is null and genre == "noir"' --fields extra,genre --json >"$TMP/added.jsonl" \
  || fail "search over an added field failed"
grep -q '"fields":{"extra":null,"genre":"noir"}' "$TMP/added.jsonl" || fail "added field: $(head -2 "$TMP/added.jsonl")"
stop_flow
echo "flow_filter: schema changes OK"

# a compaction longer than the router's dead_after_ms (issue 11): the
# shard compacts in a thread while it keeps heartbeating and answering
# searches from the old segment, so the router never marks it down and
# every answer during the compaction is complete and exact; writes sent
# meanwhile are refused UNAVAILABLE ("compacting ... retry") and nflow
# index retries them in.  Real size, no test knob: 300,000 rows built
# offline into the shard's directory (ids "0".."299999"), the first 10,000
# built again (same vectors: upserts, so 10,000 deleted rows to drop; done
# offline because one big delete request is itself a long silence).  The
# searches filter on an int column (n < 3000): the block summaries skip
# most windows, so a scan stays far below dead_after_ms even in the ASan
# build (an unfiltered scan of 300,000 rows takes ~0.3 s there, and a scan
# heartbeats only before and after), while the compaction copies it all.
WS=$TMP/ws-big
mkdir -p "$WS/indexer"
cat >"$TMP/big.yml" <<YML
version: 1
name: e2e-compact-alive
gateway: {with: {timeout_ms: 10000}}
pods:
  - name: router
    uses: router
    with: {heartbeat_ms: 20, dead_after_ms: 200}
  - name: indexer
    uses: indexer
    shards: 1
    with: {dim: 16, metric: l2, heartbeat_ms: 20, fields: {n: int}}
  - name: reducer
    uses: reducer
YML
"$PY" - "$TMP" <<'PY'
import sys
import numpy as np
tmp = sys.argv[1]
rng = np.random.default_rng(12)
x = rng.standard_normal((300000, 16)).astype(np.float32)
np.save(f"{tmp}/big.npy", x)
a = np.empty((len(x), 17), dtype=np.float32)
a[:, 0] = np.array([16], dtype=np.int32).view(np.float32)[0]
a[:, 1:] = x
a.tofile(f"{tmp}/big.fvecs")
a[:10000].tofile(f"{tmp}/again.fvecs")
with open(f"{tmp}/big-fields.jsonl", "w") as f:
    f.write("".join('{"n": %d}\n' % i for i in range(len(x))))
with open(f"{tmp}/again-fields.jsonl", "w") as f:
    f.write("".join('{"n": %d}\n' % i for i in range(10000)))
with open(f"{tmp}/late.jsonl", "w") as f:      # far from every query: never in a top 10
    for i in range(50):
        f.write('{"id": "late-%d", "n": %d, "vector": [%s]}\n'
                % (i, 1000000 + i, ",".join(["100.0"] * 15 + [str(i)])))
PY
"$NFLOW_BIN" segment build "$WS/indexer/shard-0" "$TMP/big.fvecs" --field n:int \
  --fields-file "$TMP/big-fields.jsonl" >/dev/null \
  || fail "segment build of the big shard failed"
"$NFLOW_BIN" segment build "$WS/indexer/shard-0" "$TMP/again.fvecs" \
  --fields-file "$TMP/again-fields.jsonl" >/dev/null \
  || fail "segment build (upserts) of the big shard failed"
start_flow "$TMP/big.yml"
F=(-f "$TMP/big.yml" --workspace "$WS")
# searches in a loop until the compaction ends (checked against numpy after)
( i=0
  while [ ! -e "$TMP/compact.done" ]; do
    i=$((i + 1))
    "$NFLOW_BIN" search "${F[@]}" --queries "$TMP/queries.fvecs" -k 10 --json --filter 'n < 3000' \
      >"$TMP/bigres.$i.jsonl" \
      || { echo "search $i failed during the compaction" >"$TMP/bg.fail"; exit 1; }
  done ) &
BG=$!
sleep 0.3     # a search or two before the compaction starts
"$NFLOW_BIN" compact "${F[@]}" --json >"$TMP/bigcompact.out" 2>"$TMP/bigcompact.err" &
CP=$!
for _ in $(seq 200); do       # the writes go in once the shard says it compacts
  grep -q "\[indexer/0\] compacting:" "$TMP/up.err" && break
  sleep 0.05
done
"$NFLOW_BIN" index "${F[@]}" --retries 8 "$TMP/late.jsonl" >"$TMP/late.out" 2>"$TMP/late.err" &
IX=$!
wait $CP || fail "compact failed: $(cat "$TMP/bigcompact.out" "$TMP/bigcompact.err")"
: >"$TMP/compact.done"
wait $BG || fail "$(cat "$TMP/bg.fail" 2>/dev/null)"
wait $IX || fail "index during the compaction failed: $(cat "$TMP/late.out" "$TMP/late.err")"
cat "$TMP/bigcompact.out"
[ "$(cat "$TMP/late.out")" = "indexed 50, rejected 0, failed 0" ] \
  || fail "index during the compaction: $(cat "$TMP/late.out" "$TMP/late.err")"
grep "compacting" "$TMP/late.err" | head -n 1 || true      # refused, retried (unless it ended first)
"$PY" - "$TMP/bigcompact.out" <<'PY' || fail "big compaction: $(cat "$TMP/bigcompact.out")"
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])]
assert len(r) == 1 and r[0]["ok"] and r[0]["kept"] in (300000, 300050) and r[0]["dropped"] == 10000, r
# the case proves something only when the compaction outlived dead_after_ms
assert r[0]["ms"] > 200, "compaction took %s ms, not longer than dead_after_ms 200" % r[0]["ms"]
PY
n=$(ls "$TMP"/bigres.*.jsonl | wc -l)
[ "$n" -ge 3 ] || fail "only $n searches ran around the compaction"
"$PY" - "$TMP" "$TMP"/bigres.*.jsonl <<'PY' || fail "an answer around the compaction was partial or not exact"
import json, sys
import numpy as np
tmp = sys.argv[1]
x, queries = np.load(f"{tmp}/big.npy"), np.load(f"{tmp}/queries.npy")
want = []
for q in queries:
    d = ((x[:3000] - q) ** 2).sum(axis=1)
    want.append(d[np.argsort(d, kind="stable")[:10]])
for res in sys.argv[2:]:
    lines = [json.loads(l) for l in open(res)]
    assert len(lines) == len(queries), (res, len(lines))
    for qi, line in enumerate(lines):
        assert line["partial"] is False, (res, line)
        got = [int(m["id"]) for m in line["matches"]]
        assert len(got) == 10, (res, line)
        for g, w in zip(got, want[qi]):
            assert g < 3000, (res, qi, g)
            assert abs(((x[g] - queries[qi]) ** 2).sum() - w) < 1e-3, (res, qi, g)
PY
grep -q "shard 0 is down" "$TMP/up.err" && fail "the router marked the compacting shard down: $(grep 'is down' "$TMP/up.err")"
out=$("$NFLOW_BIN" search "${F[@]}" --queries "$TMP/queries.fvecs" -k 3 --ids-only --filter 'n < 3000') \
  || fail "search after the big compaction"
stop_flow
rows=$("$NFLOW_BIN" segment info "$WS/indexer/shard-0" | sed -n 's/^live: *//p')
[ "$rows" -eq 300050 ] || fail "after the compaction and the late writes the shard holds $rows live rows, not 300050"
echo "flow_filter: compaction longer than dead_after_ms OK ($n checked searches around it)"
