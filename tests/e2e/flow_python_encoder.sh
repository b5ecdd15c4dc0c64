#!/usr/bin/env bash
# flows/python-encoder.yml end to end: the Python example encoder (two
# replicas, started by the launcher as exec pods) encodes texts; documents
# are indexed into two shards and text searches find them.  A wrong-dim
# vector is refused with BAD_DIM by the Python pod.  A killed Python pod is
# restarted by the launcher; on shutdown every pod is gone.
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
[ "$out" = "indexed 200, rejected 0, failed 0" ] || fail "index printed '$out'"

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

# An exec pod that dies is restarted like a built-in one, and serves again.
pid=$(state_get pyencoder/0 pid)
kill -KILL "$pid"
new=$pid
for _ in $(seq 100); do   # <= 5 s for a new pid in flow.state
  sleep 0.05
  new=$(state_get pyencoder/0 pid)
  [ "$new" = "$pid" ] || break
done
[ "$new" != "$pid" ] || fail "pyencoder/0 was not restarted"
grep -q "pod pyencoder/0 exited (signal 9" "$TMP/up.err" || fail "no restart message for pyencoder/0"
ok=0
for _ in $(seq 50); do    # <= 10 s until both replicas answer again
  if nf status "${F[@]}" | grep -Eq '^pyencoder/0 +up '; then ok=1; break; fi
  sleep 0.2
done
[ "$ok" = 1 ] || fail "pyencoder/0 not up after its restart"
for i in 1 2 3 4; do      # round-robin reaches the restarted replica too
  nf search "${F[@]}" --text "the cat sat on the mat" -k 1 --json | grep -q '"partial":false' \
    || fail "search $i after the restart failed"
done

pods=$(state_pids)
stop_flow
for p in $pods; do
  ! kill -0 "$p" 2>/dev/null || fail "pod $p outlived the flow"
done
echo "flow_python_encoder: ok"
