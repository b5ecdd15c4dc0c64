#!/usr/bin/env bash
# A 3-shard flow without encoder: index 2000 random vectors (JSONL), search
# 25 queries and compare with an exact numpy search (same ids, same
# scores); delete ids and check they vanish; re-index an id and check it is
# replaced (upsert), with its new text and tags.
set -euo pipefail
. "$(dirname "$0")/flow_lib.sh"

cat >"$TMP/flow.yml" <<YML
version: 1
name: e2e-search
gateway: {with: {timeout_ms: 10000}}
pods:
  - name: indexer
    uses: indexer
    shards: 3
    with: {dim: 24, metric: l2}
  - name: reducer
    uses: reducer
YML

"$PY" - "$TMP" <<'PY'
import json, sys
import numpy as np
tmp = sys.argv[1]
rng = np.random.default_rng(7)
docs = rng.standard_normal((2000, 24)).astype(np.float32)
queries = rng.standard_normal((25, 24)).astype(np.float32)
np.save(f"{tmp}/docs.npy", docs)
np.save(f"{tmp}/queries.npy", queries)
with open(f"{tmp}/docs.jsonl", "w") as f:
    for i, v in enumerate(docs):
        f.write(json.dumps({"id": f"doc-{i}", "vector": [float(x) for x in v],
                            "text": f"text of {i}", "tags": {"n": str(i)}}) + "\n")
with open(f"{tmp}/queries.fvecs", "wb") as f:
    for q in queries:
        np.array([24], dtype=np.int32).tofile(f)
        q.tofile(f)
PY

start_flow "$TMP/flow.yml"
F=(-f "$TMP/flow.yml" --workspace "$WS")

out=$(nf index "${F[@]}" "$TMP/docs.jsonl")
[ "$out" = "indexed 2000, rejected 0, failed 0" ] || fail "index printed '$out'"

check() {  # check RESULTS.jsonl DELETED_IDS...: compare with numpy over the live docs
  "$PY" - "$TMP" "$@" <<'PY'
import json, sys
import numpy as np
tmp, res, deleted = sys.argv[1], sys.argv[2], set(sys.argv[3:])
docs, queries = np.load(f"{tmp}/docs.npy"), np.load(f"{tmp}/queries.npy")
live = np.array([i for i in range(len(docs)) if f"doc-{i}" not in deleted])
lines = [json.loads(l) for l in open(res)]
assert len(lines) == len(queries), f"{len(lines)} result lines for {len(queries)} queries"
for qi, line in enumerate(lines):
    assert line["query"] == qi, line
    assert line["partial"] is False and line["missing_shards"] == [], line
    d = ((docs[live] - queries[qi]) ** 2).sum(axis=1)
    order = np.argsort(d, kind="stable")[:10]
    want = [f"doc-{live[j]}" for j in order]
    got = [m["id"] for m in line["matches"]]
    assert got == want, f"query {qi}: got {got}, want {want}"
    for m, j in zip(line["matches"], order):
        assert abs(m["score"] - d[j]) <= 1e-3 * max(1.0, d[j]), (qi, m, d[j])
        n = m["id"].split("-")[1]
        assert m.get("text") == f"text of {n}", m
        assert m.get("tags") == {"n": n}, m
print(f"{len(lines)} queries match numpy")
PY
}

nf search "${F[@]}" --queries "$TMP/queries.fvecs" -k 10 --json >"$TMP/r1.jsonl" \
  || fail "search failed"
check "$TMP/r1.jsonl" || fail "results differ from numpy"

# delete the best match of the first 5 queries (and an id that does not exist)
ids=$("$PY" -c 'import json,sys
for l in list(open(sys.argv[1]))[:5]: print(json.loads(l)["matches"][0]["id"])' "$TMP/r1.jsonl" | sort -u)
n=$(echo "$ids" | wc -l)
out=$(nf delete "${F[@]}" $ids no-such-id)
[ "$out" = "deleted $n" ] || fail "delete printed '$out', expected 'deleted $n'"
nf search "${F[@]}" --queries "$TMP/queries.fvecs" -k 10 --json >"$TMP/r2.jsonl"
for id in $ids; do
  ! grep -q "\"$id\"" "$TMP/r2.jsonl" || fail "deleted $id still found"
done
check "$TMP/r2.jsonl" $ids || fail "results after delete differ from numpy"

# re-index doc-7 with the vector of query 0: it must now be query 0's best
# match at distance 0, with the new text, and its old vector must be gone
"$PY" - "$TMP" <<'PY'
import json, sys
import numpy as np
tmp = sys.argv[1]
q = np.load(f"{tmp}/queries.npy")[0]
old = np.load(f"{tmp}/docs.npy")[7]
with open(f"{tmp}/again.jsonl", "w") as f:
    f.write(json.dumps({"id": "doc-7", "vector": [float(x) for x in q], "text": "replaced",
                        "tags": {"v": "2"}}) + "\n")
with open(f"{tmp}/old7.jsonl", "w") as f:
    f.write(json.dumps({"id": "q", "vector": [float(x) for x in old]}) + "\n")
PY
out=$(nf index "${F[@]}" "$TMP/again.jsonl")
[ "$out" = "indexed 1, rejected 0, failed 0" ] || fail "re-index printed '$out'"
nf search "${F[@]}" --queries "$TMP/queries.fvecs" -k 1 --json | head -n 1 >"$TMP/r3.jsonl"
"$PY" - "$TMP/r3.jsonl" <<'PY' || fail "re-indexed doc-7 is not query 0's best match"
import json, sys
m = json.loads(open(sys.argv[1]).readline())["matches"][0]
assert m["id"] == "doc-7" and abs(m["score"]) < 1e-4 and m["text"] == "replaced", m
assert m["tags"] == {"v": "2"}, m
PY
nf search "${F[@]}" --queries "$TMP/old7.jsonl" -k 3 --json >"$TMP/r4.jsonl"
"$PY" - "$TMP/r4.jsonl" <<'PY' || fail "the old vector of doc-7 is still indexed"
import json, sys
for m in json.loads(open(sys.argv[1]).readline())["matches"]:
    assert not (m["id"] == "doc-7" and m["score"] < 1e-3), m
PY

# the readable listing and a search for a text without an encoder: an error
nf search "${F[@]}" --queries "$TMP/old7.jsonl" -k 2 | grep -q '^query 0' || fail "no readable listing"
if nf search "${F[@]}" --text "hello" -k 2 >"$TMP/err.out" 2>&1; then
  fail "a text query without an encoder succeeded"
fi
grep -q "nflow search: STATUS_" "$TMP/err.out" || fail "text query error: $(cat "$TMP/err.out")"

stop_flow

# multi-host on one machine: indexer/1 lives on 127.0.0.2 and is started by
# a second launcher (`--host 127.0.0.2`); every port is explicit
base=$("$PY" - <<'PY'
import random, socket
for _ in range(200):
    base = random.randrange(20000, 60000, 10)
    try:
        for host in ("127.0.0.1", "127.0.0.2"):
            for p in range(base, base + 40):
                s = socket.socket(); s.bind((host, p)); s.close()
    except OSError:
        continue
    print(base)
    break
PY
)
cat >"$TMP/mh.yml" <<YML
version: 1
name: e2e-multihost
gateway: {host: 127.0.0.1, port: $base}
pods:
  - {name: router, uses: router, host: 127.0.0.1, port: $((base + 10))}
  - {name: indexer, uses: indexer, shards: 2, hosts: [127.0.0.1, 127.0.0.2], port: $((base + 20)),
     with: {dim: 24, metric: l2}}
  - {name: reducer, uses: reducer, host: 127.0.0.1, port: $((base + 30))}
YML
"$NFLOW_BIN" up "$TMP/mh.yml" --workspace "$TMP/ws2" --host 127.0.0.2 >"$TMP/up2.out" 2>"$TMP/up2.err" &
second=$!
EXTRA_PIDS=$second
# the old 3-shard workspace is refused: re-sharding would duplicate documents
if timeout 30 "$NFLOW_BIN" up "$TMP/mh.yml" --workspace "$WS" --host 127.0.0.1 >/dev/null 2>"$TMP/reshard.err"; then
  fail "a 2-shard flow started on a 3-shard workspace"
fi
grep -q "holds 3 shards but the flow has 2" "$TMP/reshard.err" || fail "re-shard: $(cat "$TMP/reshard.err")"
WS=$TMP/ws3                                  # a fresh workspace: 2 shards now
start_flow "$TMP/mh.yml" --host 127.0.0.1    # ready only once indexer/1 answers too
for _ in $(seq 200); do grep -q '^ready ' "$TMP/up2.out" && break; sleep 0.1; done
grep -q "^ready gateway=tcp://127.0.0.1:$base\$" "$TMP/up2.out" || fail "second launcher not ready"
M=(-f "$TMP/mh.yml" --workspace "$WS")
nf index "${M[@]}" "$TMP/docs.jsonl" >/dev/null || fail "multi-host index"
nf search "${M[@]}" --queries "$TMP/queries.fvecs" -k 10 --json >"$TMP/r5.jsonl" || fail "multi-host search"
check "$TMP/r5.jsonl" || fail "multi-host results differ from numpy"
nf status "${M[@]}" --json | grep -q '"pod":"indexer/1","up":true' || fail "multi-host status"
kill -TERM "$second"
wait "$second" || fail "the second launcher exited with an error"
EXTRA_PIDS=
stop_flow
echo "flow_search: ok"
