#!/usr/bin/env bash
# flows/python-encoder.yml end to end: the Python example encoder (two
# replicas, started by the launcher as exec pods) encodes texts; documents
# are indexed into two shards and text searches find them.  A wrong-dim
# vector is refused with BAD_DIM by the Python pod.
set -euo pipefail
. "$(dirname "$0")/flow_lib.sh"
: "${NFLOW_SOURCE_ROOT:?}"
cd "$NFLOW_SOURCE_ROOT"          # the flow's command is relative to the repository
unset NFLOW_PY_PROTO_DIR          # the launcher must find the generated module itself

start_flow flows/python-encoder.yml
F=(-f flows/python-encoder.yml --workspace "$WS")

"$PY" - "$TMP/docs.jsonl" <<'PY'
import json, sys
texts = ["the quick brown fox jumps over the lazy dog",
         "a bug in the code is worth two in the documentation",
         "segmentation fault in the memory allocator",
         "vector search with sharded memory mapped indexes",
         "the cat sat on the mat"]
with open(sys.argv[1], "w") as f:
    for i in range(200):
        f.write(json.dumps({"id": f"d{i}", "text": f"{texts[i % 5]} number {i}",
                            "tags": {"k": str(i % 5)}}) + "\n")
PY
out=$(nf index "${F[@]}" "$TMP/docs.jsonl")
[ "$out" = "indexed 200 documents" ] || fail "index printed '$out'"

nf search "${F[@]}" --text "sharded vector search indexes" -k 5 --json >"$TMP/res.jsonl"
"$PY" - "$TMP/res.jsonl" <<'PY'
import json, sys
line = json.loads(open(sys.argv[1]).readline())
m = line["matches"]
assert len(m) == 5, m
assert line["partial"] is False, line
for hit in m:
    assert hit["tags"]["k"] == "3", hit       # all from the 'vector search' text
    assert "vector search" in hit["text"], hit
PY

# Both replicas served (the gateway pushes round-robin over connected replicas).
for r in 0 1; do
  ctl=$(state_get "pyencoder/$r" control)
  [ -n "$ctl" ] || fail "no pyencoder/$r in flow.state"
done
status=$(nf status "${F[@]}")
echo "$status" | grep -Eq '^pyencoder/0 +up ' || fail "status: $status"
echo "$status" | grep -Eq '^pyencoder/1 +up ' || fail "status: $status"

# A query vector of the wrong dim is refused by the Python encoder.
"$PY" -c 'import numpy as np, sys
f = open(sys.argv[1], "wb"); np.array([8], np.int32).tofile(f); np.ones(8, np.float32).tofile(f)' "$TMP/bad.fvecs"
if nf search "${F[@]}" --queries "$TMP/bad.fvecs" -k 3 >"$TMP/bad.out" 2>&1; then
  fail "wrong-dim query succeeded: $(cat "$TMP/bad.out")"
fi
grep -q 'BAD_DIM' "$TMP/bad.out" || fail "no BAD_DIM in: $(cat "$TMP/bad.out")"

stop_flow
echo "flow_python_encoder: ok"
