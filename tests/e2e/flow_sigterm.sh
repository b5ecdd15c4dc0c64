#!/usr/bin/env bash
# SIGTERM the launcher: it TERMINATEs every pod, exits 0 within 2 s, every
# pod process is gone and flow.state is removed.  Also: a second `nflow up`
# on the same workspace is refused while the first runs, and SIGINT works
# like SIGTERM; pods of a SIGKILLed launcher exit too.
set -euo pipefail
. "$(dirname "$0")/flow_lib.sh"

cat >"$TMP/flow.yml" <<YML
version: 1
name: e2e-term
pods:
  - {name: encoder, uses: encoder, replicas: 2, with: {dim: 32}}
  - {name: indexer, uses: indexer, shards: 2, with: {dim: 32}}
YML

for sig in TERM INT; do
  start_flow "$TMP/flow.yml"
  pids=$(state_pids)
  [ "$(echo "$pids" | wc -w)" -eq 7 ] || fail "expected 7 pods in flow.state, got: $pids"
  for p in $pids; do kill -0 "$p" || fail "pod pid $p is not running"; done
  if timeout 20 "$NFLOW_BIN" up "$TMP/flow.yml" --workspace "$WS" >"$TMP/second.out" 2>&1; then
    fail "a second nflow up on the same workspace started"
  fi
  grep -q "in use by another" "$TMP/second.out" || fail "second up: $(cat "$TMP/second.out")"

  start=$(date +%s%N)
  kill -"$sig" "$UP_PID"
  for _ in $(seq 100); do kill -0 "$UP_PID" 2>/dev/null || break; sleep 0.02; done
  elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
  rc=0
  wait "$UP_PID" || rc=$?
  UP_PID=
  [ "$rc" -eq 0 ] || fail "SIG$sig: nflow up exited with status $rc"
  [ "$elapsed_ms" -le 2000 ] || fail "SIG$sig: nflow up took $elapsed_ms ms to stop"
  for p in $pids; do
    ! kill -0 "$p" 2>/dev/null || fail "SIG$sig: pod pid $p still runs"
  done
  [ ! -e "$WS/flow.state" ] || fail "SIG$sig: flow.state was not removed"
  echo "SIG$sig: stopped in $elapsed_ms ms"
done

# the launcher killed outright: its pods follow it (parent-death signal)
start_flow "$TMP/flow.yml"
pids=$(state_pids)
kill -KILL "$UP_PID"
wait "$UP_PID" 2>/dev/null || true
UP_PID=
for _ in $(seq 100); do
  alive=
  for p in $pids; do kill -0 "$p" 2>/dev/null && alive="$alive $p"; done
  [ -z "$alive" ] && break
  sleep 0.05
done
[ -z "$alive" ] || fail "pods outlived a killed launcher:$alive"
# and the workspace can be used again (the stale flow.state is replaced)
start_flow "$TMP/flow.yml"
stop_flow
echo "flow_sigterm: ok"
