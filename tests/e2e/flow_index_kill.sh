#!/usr/bin/env bash
# Kill -9 indexer shards again and again while `nflow index` streams
# documents into them (many requests in flight, so each shard commits
# groups of them pipelined: a group's syncs run while the next group is
# written, and it is answered only once durable).  Every document
# `nflow index` was told is stored must be there after the last restart:
# it ends "failed 0" (it retries what a killed shard did not answer) and
# the shards hold exactly the documents indexed.  An answer sent before
# its group was durable would show as fewer rows than that.
set -euo pipefail
. "$(dirname "$0")/flow_lib.sh"

cat >"$TMP/flow.yml" <<YML
version: 1
name: e2e-index-kill
gateway: {with: {timeout_ms: 3000}}
pods:
  - {name: indexer, uses: indexer, shards: 2, with: {dim: 16, metric: l2}}
YML
N=150000
"$PY" - "$TMP" "$N" <<'PY'
import sys
import numpy as np
n = int(sys.argv[2])
v = np.random.default_rng(7).standard_normal((n, 16), dtype=np.float32)
with open(f"{sys.argv[1]}/docs.fvecs", "wb") as f:
    rows = np.empty((n, 17), dtype=np.float32)
    rows[:, 0] = np.frombuffer(np.int32(16).tobytes(), dtype=np.float32)[0]
    rows[:, 1:] = v
    rows.tofile(f)
PY

start_flow "$TMP/flow.yml"
F=(-f "$TMP/flow.yml" --workspace "$WS")
timeout 300 "$NFLOW_BIN" index "${F[@]}" --batch 25 --inflight 8 --retries 12 \
    "$TMP/docs.fvecs" >"$TMP/index.out" 2>"$TMP/index.err" &
IDX=$!
EXTRA_PIDS="$EXTRA_PIDS $IDX"

# kill a shard every 250-400 ms while the index runs (at most 15 kills,
# bounded in time by the index's own timeout)
kills=0
while kill -0 "$IDX" 2>/dev/null && [ "$kills" -lt 15 ]; do
  sleep "0.$(( 25 + RANDOM % 15 ))"
  s=$(( RANDOM % 2 ))
  pid=$(state_get "indexer/$s" pid)
  if [ "${pid:-0}" -gt 1 ] 2>/dev/null && kill -KILL "$pid" 2>/dev/null; then
    kills=$((kills + 1))
  fi
done
rc=0
wait "$IDX" || rc=$?
out=$(cat "$TMP/index.out")
echo "$kills shard kills during the index; nflow index: $out (exit $rc)" >&2
[ "$kills" -ge 3 ] || fail "only $kills kills landed during the index (it ran too fast to test)"
[ "$rc" -eq 0 ] && [ "$out" = "indexed $N, rejected 0, failed 0" ] \
  || fail "nflow index printed '$out', exit $rc ($(tail -3 "$TMP/index.err"))"

# every shard up again, then the rows they hold: exactly N
rows=
for _ in $(seq 200); do
  rows=$(nf status "${F[@]}" --json 2>/dev/null \
         | "$PY" -c 'import json,sys; p=[json.loads(l) for l in sys.stdin]; print(sum(x.get("rows", 0) for x in p) if all(x.get("up") for x in p) else "")' || true)
  [ -n "$rows" ] && break
  sleep 0.1
done
[ "$rows" = "$N" ] || fail "the shards hold '$rows' rows after $kills kills, expected $N"
echo "OK: $N documents acknowledged and all $N stored after $kills SIGKILLs" >&2
stop_flow
