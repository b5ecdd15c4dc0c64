# Shared by the flow_* end-to-end tests (sourced, not run): a temporary
# directory, starting and stopping `nflow up` with bounded waits, reading
# flow.state.  Every test starts its own flow on free ports and always
# stops it on exit.
: "${NFLOW_BIN:?NFLOW_BIN must point at the built nflow}"
: "${NFLOW_PODS_DIR:?}"
export NFLOW_PODS_DIR
PY=${PYTHON:-/usr/bin/python3}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/nflow-e2e-XXXXXX")
WS=$TMP/ws
UP_PID=
EXTRA_PIDS=      # other launchers a test starts; stopped on exit too
GATEWAY=

fail() {
  echo "FAIL: $*" >&2
  if [ -s "$TMP/up.err" ]; then
    echo "--- nflow up stderr (last 40 lines) ---" >&2
    tail -n 40 "$TMP/up.err" >&2
  fi
  exit 1
}

# Pids of every pod in flow.state (started here).
state_pids() {
  [ -f "$WS/flow.state" ] || return 0
  "$PY" -c 'import json,sys
for p in json.load(open(sys.argv[1]))["pods"]:
    if p.get("pid"): print(p["pid"])' "$WS/flow.state"
}

# state_get NAME FIELD: a field of one pod in flow.state ("pid", "control").
state_get() {
  "$PY" -c 'import json,sys
for p in json.load(open(sys.argv[1]))["pods"]:
    if p["name"] == sys.argv[2]: print(p[sys.argv[3]])' "$WS/flow.state" "$1" "$2"
}

cleanup() {
  local rc=$?
  if [ -n "$UP_PID" ] && kill -0 "$UP_PID" 2>/dev/null; then
    local pods
    pods=$(state_pids 2>/dev/null || true)
    kill -TERM "$UP_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$UP_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$UP_PID" 2>/dev/null || true
    for p in $pods; do kill -KILL "$p" 2>/dev/null || true; done
  fi
  for p in $EXTRA_PIDS; do kill -TERM "$p" 2>/dev/null || true; done
  for p in $EXTRA_PIDS; do wait "$p" 2>/dev/null || true; done
  rm -rf "$TMP"
  exit $rc
}
trap cleanup EXIT

# start_flow FLOW.yml [ARGS...]: start it in the background, wait (<= 40 s)
# for the ready line; sets UP_PID and GATEWAY.
start_flow() {
  local flow=$1
  shift
  : >"$TMP/up.out"    # here, not in the background job: no stale ready line
  "$NFLOW_BIN" up "$flow" --workspace "$WS" "$@" >"$TMP/up.out" 2>"$TMP/up.err" &
  UP_PID=$!
  for _ in $(seq 400); do
    if grep -q '^ready gateway=' "$TMP/up.out" 2>/dev/null; then
      GATEWAY=$(sed -n 's/^ready gateway=//p' "$TMP/up.out")
      [ "$(wc -l <"$TMP/up.out")" -eq 1 ] || fail "nflow up printed more than the ready line: $(od -c "$TMP/up.out" | head)"
      [ -f "$WS/flow.state" ] || fail "no flow.state after ready"
      return 0
    fi
    kill -0 "$UP_PID" 2>/dev/null || { wait "$UP_PID" || true; fail "nflow up exited before ready"; }
    sleep 0.1
  done
  fail "flow not ready after 40 s"
}

# stop_flow: SIGTERM the launcher and require exit status 0 (<= 10 s).
stop_flow() {
  kill -TERM "$UP_PID"
  for _ in $(seq 100); do kill -0 "$UP_PID" 2>/dev/null || break; sleep 0.1; done
  local rc=0
  wait "$UP_PID" || rc=$?
  UP_PID=
  [ "$rc" -eq 0 ] || fail "nflow up exited with status $rc"
}

# nf ARGS...: nflow with a bound on its run time.
nf() {
  timeout 120 "$NFLOW_BIN" "$@"
}
