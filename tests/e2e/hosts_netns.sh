#!/usr/bin/env bash
# A flow over three hosts for real: network namespaces h1 (gateway,
# encoder, router, reducer), h2 (indexer/0, and the client), h3 (indexer/1),
# joined by veth links to a bridge in a switch namespace, plus an intruder
# namespace h4 on the same bridge.  One `nflow up --host` per host, CurveZMQ
# on every link (each host holds only its own secret keys).  Checks:
#   - recall@1 of exact-text queries against the ids that were indexed;
#   - the intruder, with no key or a key of its own, cannot search, index,
#     delete, TERMINATE a pod or pose as a shard, and changes nothing;
#     a pod key of the flow claiming shard 1 is refused by the router;
#   - tcpdump on the bridge sees no document text (but sees the intruder's
#     plain-text probe: the capture works);
#   - a cut link (h3's veth down): searches partial at once, complete again
#     within ~1 s after healing (the times are printed), and index parts
#     sent during the cut are not applied late;
#   - h3 killed (every process of the namespace) and restarted;
#   - a host started with a different flow is refused by name;
#   - `nflow status` from another machine's workspace lists every pod;
#   - all along, h2's clock is 10 s behind and h3's 10 s ahead (libfaketime):
#     answers are complete and on time (deadlines travel as time left).
# Needs root (namespaces): skipped otherwise, but fails when CI=true.
set -euo pipefail
: "${NFLOW_BIN:?NFLOW_BIN must point at the built nflow}"
: "${NFLOW_PODS_DIR:?}"
export NFLOW_PODS_DIR
PY=${PYTHON:-/usr/bin/python3}
T_START=$(date +%s%N)

skip() {
  if [ "${CI:-}" = "true" ]; then
    echo "FAIL: hosts_netns would be skipped in CI: $*" >&2
    exit 1
  fi
  echo "SKIP: hosts_netns: $*" >&2
  exit 77
}
[ "$(id -u)" -eq 0 ] || skip "network namespaces need root (run as root, as CI does)"
command -v ip >/dev/null || skip "no ip command (iproute2)"

ID=$(printf '%04x%02x' $(( $$ & 0xffff )) $(( RANDOM & 0xff )))
SW=nfsw$ID                      # the switch namespace with the bridge
NS=(nfa$ID nfb$ID nfc$ID nfd$ID)  # h1 h2 h3 h4 (intruder)
ADDR=(10.77.0.1 10.77.0.2 10.77.0.3 10.77.0.4)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/nflow-hosts-XXXXXX")
PIDS=()                         # launchers started here
CAP_PID=

cleanup() {
  local rc=$?
  for p in "${PIDS[@]}" $CAP_PID; do kill -TERM "$p" 2>/dev/null || true; done
  sleep 0.3
  for ns in "${NS[@]}" "$SW"; do
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
  done
  for p in "${PIDS[@]}" $CAP_PID; do wait "$p" 2>/dev/null || true; done
  for ns in "${NS[@]}" "$SW"; do ip netns del "$ns" 2>/dev/null || true; done
  if [ $rc -ne 0 ]; then
    for h in 1 2 3; do
      [ -s "$TMP/h$h/up.err" ] && { echo "--- h$h nflow up stderr (last 25) ---"; tail -n 25 "$TMP/h$h/up.err"; } >&2
    done
  fi
  rm -rf "$TMP"
  exit $rc
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
inns() { local i=$1; shift; ip netns exec "${NS[$i]}" "$@"; }

# ---- the network ----
ip netns add "$SW" 2>/dev/null || skip "cannot create network namespaces here"
ip -n "$SW" link add br0 type bridge
ip -n "$SW" link set br0 up
for i in 0 1 2 3; do
  ip netns add "${NS[$i]}"
  ip link add "v$ID$i" type veth peer name "p$ID$i"
  ip link set "v$ID$i" netns "${NS[$i]}"
  ip link set "p$ID$i" netns "$SW"
  ip -n "$SW" link set "p$ID$i" master br0 up
  ip -n "${NS[$i]}" link set lo up
  ip -n "${NS[$i]}" addr add "${ADDR[$i]}/24" dev "v$ID$i"
  ip -n "${NS[$i]}" link set "v$ID$i" up
done

# ---- the flow, its keys, one directory per host ----
flow() {   # flow METRIC
  cat <<YML
version: 1
name: e2e-hosts
security: {keys: keys}
gateway: {host: ${ADDR[0]}, port: 7000, with: {timeout_ms: 3000}}
pods:
  - {name: encoder, uses: encoder, host: ${ADDR[0]}, port: 7010, with: {dim: 64}}
  - {name: router, uses: router, host: ${ADDR[0]}, port: 7020,
     with: {heartbeat_ms: 100, dead_after_ms: 500}}
  - {name: indexer, uses: indexer, shards: 2, hosts: [${ADDR[1]}, ${ADDR[2]}], port: 7100,
     with: {dim: 64, metric: $1, heartbeat_ms: 100}}
  - {name: reducer, uses: reducer, host: ${ADDR[0]}, port: 7030}
YML
}
flow l2 >"$TMP/flow.yml"
(cd "$TMP" && "$NFLOW_BIN" keys flow.yml >/dev/null) || fail "nflow keys"
[ "$(stat -c %a "$TMP/keys/shard-1.key")" = 600 ] || fail "a secret key is not 0600"
for h in 1 2 3 4; do mkdir -p "$TMP/h$h/keys"; done
for h in 1 2 3; do
  cp "$TMP/flow.yml" "$TMP/h$h/"
  cp "$TMP"/keys/*.pub "$TMP/keys/operator.key" "$TMP/h$h/keys/"
done
cp "$TMP/keys/pod.key" "$TMP/h1/keys/"
cp "$TMP/keys/shard-0.key" "$TMP/keys/client.key" "$TMP/h2/keys/"
cp "$TMP/keys/shard-1.key" "$TMP/h3/keys/"
# the intruder knows the flow file and the public keys (they are shared),
# and makes keys of its own
cp "$TMP/flow.yml" "$TMP"/keys/*.pub "$TMP/h4/"
cp "$TMP"/keys/*.pub "$TMP/h4/keys/"
(cd "$TMP/h4" && mkdir own && "$NFLOW_BIN" keys flow.yml --dir own >/dev/null && cp keys/pod.pub own/)

# a group-readable secret key is refused before anything starts
chmod 640 "$TMP/h3/keys/shard-1.key"
if (cd "$TMP/h3" && inns 2 timeout 10 "$NFLOW_BIN" up flow.yml --host "${ADDR[2]}" --workspace ws \
      2>"$TMP/h3/mode.err"); then fail "a launcher started with a group-readable key"; fi
grep -q "shard-1.key: mode 0640" "$TMP/h3/mode.err" || fail "mode refusal: $(cat "$TMP/h3/mode.err")"
chmod 600 "$TMP/h3/keys/shard-1.key"

# Clocks that disagree: h2's launcher and pods run 10 s behind, h3's 10 s
# ahead (libfaketime, inherited by the pods).  Requests carry the time left,
# measured by each pod on its own clock, so answers must stay complete.
SKEW=("" "-10s" "+10s")
if ! command -v faketime >/dev/null; then
  [ "${CI:-}" = "true" ] && fail "faketime missing (tools/bootstrap.sh installs it)"
  echo "note: no faketime, the hosts' clocks are not skewed" >&2
  SKEW=("" "" "")
elif ! timeout 5 faketime -f "+10s" "$NFLOW_BIN" --help >/dev/null 2>&1; then
  # libfaketime cannot start under every runtime (ASan's interceptors make
  # its clock_gettime recurse and hang): the plain build runs the skew
  echo "note: libfaketime does not run this build of nflow; the hosts' clocks are not skewed" >&2
  SKEW=("" "" "")
fi
start_host() {   # start_host H (1..3): nflow up in namespace h(H), in $TMP/hH
  local h=$1 i=$(( $1 - 1 ))
  local skew=()
  [ -n "${SKEW[$i]}" ] && skew=(faketime -f "${SKEW[$i]}")
  : >"$TMP/h$h/up.out"
  (cd "$TMP/h$h" && exec ip netns exec "${NS[$i]}" "${skew[@]}" "$NFLOW_BIN" up flow.yml \
     --host "${ADDR[$i]}" --workspace ws >up.out 2>>up.err) &
  PIDS[$i]=$!
}
wait_ready() {   # wait_ready H...: every launcher printed its ready line (<= 40 s)
  for h in "$@"; do
    for _ in $(seq 400); do grep -q '^ready ' "$TMP/h$h/up.out" && break; sleep 0.1; done
    grep -q '^ready ' "$TMP/h$h/up.out" || fail "host h$h not ready"
  done
}
# nflow from the client's host (h2, which holds client.key), bounded in time
cli() { (cd "$TMP/h2" && inns 1 timeout 60 "$NFLOW_BIN" "$@"); }

# the documents: text with a marker word the capture looks for
"$PY" - "$TMP" <<'PY'
import json, sys
words = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima".split()
with open(f"{sys.argv[1]}/docs.jsonl", "w") as f:
    for i in range(200):
        text = f"zebracorn secret {i} " + " ".join(words[(i * k) % 12] for k in range(1, 6))
        f.write(json.dumps({"id": f"d{i}", "text": text}) + "\n")
PY

# ---- start: h1 first, then h3, h2: each launcher waits for the others ----
start_host 1
for _ in $(seq 80); do grep -q 'waiting' "$TMP/h1/up.err" 2>/dev/null && break; sleep 0.1; done
grep -Eq 'Z nflow up: waiting 5 s for indexer/0 on 10.77.0.2, indexer/1 on 10.77.0.3$' "$TMP/h1/up.err" \
  || fail "h1 does not say whom it waits for: $(cat "$TMP/h1/up.err")"
start_host 3
start_host 2
wait_ready 1 2 3

# ---- capture the bridge while documents and queries cross it ----
if command -v tcpdump >/dev/null; then
  ip netns exec "$SW" tcpdump -i br0 -U -w "$TMP/cap.pcap" 'tcp portrange 7000-7200' 2>"$TMP/cap.err" &
  CAP_PID=$!
  for _ in $(seq 50); do grep -q "listening" "$TMP/cap.err" 2>/dev/null && break; sleep 0.1; done
elif [ "${CI:-}" = "true" ]; then
  fail "tcpdump missing (tools/bootstrap.sh installs it)"
else
  echo "note: no tcpdump, the capture check is skipped" >&2
fi

cp "$TMP/docs.jsonl" "$TMP/h2/"
cli index -f flow.yml --workspace ws docs.jsonl >/dev/null || fail "index over CURVE"
# recall: every document's own text finds it first
"$PY" -c 'import json,sys
for l in open(sys.argv[1]): print(json.dumps({"id": json.loads(l)["id"], "text": json.loads(l)["text"]}))' \
  "$TMP/docs.jsonl" >"$TMP/h2/q.jsonl"
recall() {   # recall OUT: searches every document's text, prints recall@1
  cli search -f flow.yml --workspace ws --queries q.jsonl -k 1 --json >"$TMP/$1" 2>"$TMP/$1.err" || true
  "$PY" - "$TMP/$1" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
hit = sum(1 for i, l in enumerate(lines) if l["matches"] and l["matches"][0]["id"] == f"d{i}"
          and not l["partial"])
print(f"{hit / 200:.3f}")
PY
}
r=$(recall r1.jsonl)
echo "recall@1 over 3 hosts with CURVE: $r"
[ "$r" = "1.000" ] || fail "recall $r: $(head -c 600 "$TMP/r1.jsonl") $(head -c 600 "$TMP/r1.jsonl.err")"

# ---- the intruder (h4): no key, or a key of its own ----
int_cli() { (cd "$TMP/h4" && ip netns exec "${NS[3]}" timeout 4 "$NFLOW_BIN" "$@"); }   # refused = no answer
attempts=0; refused=0
try_refused() {   # try_refused WHAT CMD...: the command must fail
  attempts=$((attempts + 1))
  if "${@:2}" >/dev/null 2>&1; then echo "intruder: $1 SUCCEEDED" >&2; return 1; fi
  refused=$((refused + 1)); echo "intruder: $1 refused"
}
echo '{"id": "evil", "text": "zebracorn-probe planted by the intruder"}' >"$TMP/h4/evil.jsonl"
GW=tcp://${ADDR[0]}:7000
try_refused "search, no key" int_cli search --gateway "$GW" --text "zebracorn-probe plain" --timeout-ms 800 || fail "intruder"
try_refused "search, own key" int_cli search --gateway "$GW" --key own/client.key --text x --timeout-ms 800 || fail "intruder"
try_refused "index, no key" int_cli index --gateway "$GW" evil.jsonl --timeout-ms 800 --retries 0 || fail "intruder"
try_refused "index, own key" int_cli index --gateway "$GW" --key own/client.key evil.jsonl --timeout-ms 800 --retries 0 || fail "intruder"
try_refused "delete, no key" int_cli delete --gateway "$GW" d1 d2 d3 --timeout-ms 800 || fail "intruder"
try_refused "delete, own key" int_cli delete --gateway "$GW" --key own/client.key d1 d2 --timeout-ms 800 || fail "intruder"
attempts=$((attempts + 1))
int_cli status -f flow.yml --workspace nows --key own/operator.key --json >"$TMP/h4/status.jsonl" 2>/dev/null || true
if grep -q '"up":true' "$TMP/h4/status.jsonl"; then fail "the intruder's operator key got STATUS answers"; fi
refused=$((refused + 1)); echo "intruder: status with its own operator key refused (every pod down to it)"
# raw sockets: TERMINATE to every control socket, envelopes pushed straight
# into the router's --in, a DEALER posing as shard-1; plain and with own keys
NFLOW_PY_PROTO_DIR=$(dirname "$(find "$NFLOW_BUILD_ROOT" -name nflow_pb2.py | head -1)")
export NFLOW_PY_PROTO_DIR
NFLOW_E2E_DIR=$(cd "$(dirname "$0")" && pwd)
export NFLOW_E2E_DIR
raw=$(cd "$TMP/h4" && ip netns exec "${NS[3]}" timeout 60 "$PY" - "${ADDR[@]}" <<'PY'
import os, sys, time
sys.path.insert(0, os.environ["NFLOW_PY_PROTO_DIR"])
sys.path.insert(0, os.environ["NFLOW_E2E_DIR"])
import zmq, zmq.auth
import nflow_pb2 as pb
import nfwire as nw                 # protocol 2 frames (proto/README.md)
a = sys.argv[1:]
controls = [f"tcp://{a[0]}:{p}" for p in (7002, 7011, 7022, 7031)] + \
           [f"tcp://{a[1]}:7100", f"tcp://{a[2]}:7101"]
ctx = zmq.Context()
own_pub, own_sec = zmq.auth.load_certificate("own/client.key")
srv_pub, _ = zmq.auth.load_certificate("keys/pod.pub")
def sock(kind, ep, curve, ident=None):
    s = ctx.socket(kind)
    s.linger = 0
    s.sndtimeo = 300
    if ident: s.identity = ident
    if curve:
        s.curve_publickey, s.curve_secretkey, s.curve_serverkey = own_pub, own_sec, srv_pub
    s.connect(ep)
    return s
term = nw.frames(pb.Control(command=pb.CONTROL_TERMINATE), request_id=7)
idx = nw.frames(nw.index_batch([{"id": "d5", "text": "zebracorn-probe overwrite"}]), request_id=9,
                time_left_us=10**7)
dele = nw.frames(nw.delete(["d1", "d2"]), request_id=10, time_left_us=10**7)
hello = nw.frames(pb.Control(command=pb.CONTROL_HELLO, shard=1, ready=True))
answers = attempts = 0
import socket                       # a raw TCP probe: the capture's positive control
r = socket.create_connection((a[0], 7000), timeout=2)
r.sendall(b"zebracorn-probe plain, raw bytes on the gateway's port\n")
r.close()
for curve in (False, True):
    for ep in controls:
        s = sock(zmq.DEALER, ep, curve); attempts += 1
        try: s.send_multipart(term, zmq.NOBLOCK)
        except zmq.Again: pass
        if s.poll(400): answers += 1
        s.close()
    p = sock(zmq.PUSH, f"tcp://{a[0]}:7020", curve)
    for body in (idx, dele):
        attempts += 1
        try: p.send_multipart(body, zmq.NOBLOCK)
        except zmq.Again: pass
    p.close()
    d = sock(zmq.DEALER, f"tcp://{a[0]}:7021", curve, b"shard-1"); attempts += 1
    for _ in range(5):
        try: d.send_multipart(hello, zmq.NOBLOCK)
        except zmq.Again: pass
    if d.poll(500): answers += 1
    d.close()
print(attempts, answers)
PY
) || fail "the intruder's raw-socket script failed"
read -r raw_attempts raw_answers <<<"$raw"
echo "intruder: $raw_attempts raw-socket attempts (TERMINATE x12, router --in pushes x4, shard-1 DEALER x2): $raw_answers answered"
[ "$raw_answers" -eq 0 ] || fail "the intruder got $raw_answers answers on raw sockets"
attempts=$((attempts + raw_attempts)); refused=$((refused + raw_attempts - raw_answers))

r=$(recall r2.jsonl)
echo "recall@1 after the intruder: $r"
[ "$r" = "1.000" ] || fail "the intruder changed the answers (recall $r)"
grep -q "evil\|zebracorn-probe" "$TMP/r2.jsonl" && fail "the intruder's document is in the index"
echo "intruder: $refused of $attempts attempts refused"
[ "$refused" -eq "$attempts" ] || fail "the intruder got through"

# status from a machine with an operator key and the flow file but no
# flow.state (h2's directory, another workspace): every pod on every host
(cd "$TMP/h2" && inns 1 timeout 30 "$NFLOW_BIN" status -f flow.yml --workspace nows --json) >"$TMP/status.jsonl" \
  || fail "status from another machine"
[ "$(grep -c '"up":true' "$TMP/status.jsonl")" -eq 6 ] || fail "status: $(cat "$TMP/status.jsonl")"
grep -q '"pod":"indexer/1".*"host":"10.77.0.3"' "$TMP/status.jsonl" || fail "status names no hosts"
"$PY" - "$TMP/status.jsonl" <<'PY' || fail "no connection was refused by CURVE"
import json, sys
print("ZAP refusals per pod:", {l["pod"]: l.get("denied") for l in map(json.loads, open(sys.argv[1]))})
assert any(json.loads(l).get("denied", 0) > 0 for l in open(sys.argv[1]))
PY

if [ -n "$CAP_PID" ]; then
  kill -INT "$CAP_PID"; wait "$CAP_PID" 2>/dev/null || true; CAP_PID=
  npk=$(tcpdump -r "$TMP/cap.pcap" 2>/dev/null | wc -l)
  echo "capture: $npk packets on the flow's ports"
  [ "$npk" -gt 100 ] || fail "the capture saw too little ($npk packets)"
  grep -aq "zebracorn-probe plain" "$TMP/cap.pcap" || fail "the capture does not see the intruder's raw probe (broken capture?)"
  if grep -aq "zebracorn secret" "$TMP/cap.pcap"; then fail "document text crossed the wire in clear"; fi
  echo "capture: no document text on the wire (the intruder's raw probe is visible: the capture works)"
fi

# ---- a link cut and healed ----
search1() {   # search1 TEXT: one search from h2; prints "partial|complete|error MS"
  local t0 out
  t0=$(date +%s%N)
  out=$(cli search -f flow.yml --workspace ws --text "$1" -k 3 --json --timeout-ms 3000 2>/dev/null || true)
  local ms; ms=$(ms_since "$t0")
  case "$out" in
    *'"partial":false'*) echo "complete $ms" ;;
    *'"partial":true'*) echo "partial $ms" ;;
    *) echo "error $ms" ;;
  esac
}
"$PY" -c 'import json
for i in range(40): print(json.dumps({"id": f"cut{i}", "text": f"written during the cut {i} zebracorn"}))' >"$TMP/h2/cut.jsonl"
ip -n "$SW" link set "p${ID}2" down
T_CUT=$(date +%s%N)
# index at once, before the router can know: shard 1's part goes into the
# dead link; the client hears it failed (no retries), and it must never be
# applied later
cli index -f flow.yml --workspace ws cut.jsonl --retries 0 --timeout-ms 1500 >/dev/null 2>&1 &
IDX_PID=$!
first_partial=; worst=0; n=0
while [ $n -lt 40 ] && [ "$(ms_since "$T_CUT")" -lt 6000 ]; do
  read -r kind ms <<<"$(search1 "zebracorn secret 7")"
  n=$((n + 1))
  if [ "$kind" = partial ] && [ -z "$first_partial" ]; then first_partial=$(ms_since "$T_CUT"); fi
  [ -n "$first_partial" ] && [ "$ms" -gt "$worst" ] && worst=$ms
  [ -n "$first_partial" ] && [ "$(ms_since "$T_CUT")" -gt 2500 ] && break
done
echo "cut: first partial answer $first_partial ms after the cut; slowest search after that $worst ms"
[ -n "$first_partial" ] || fail "no partial answer during the cut"
[ "$first_partial" -lt 2500 ] || fail "partial answers came only at the deadline"
[ "$worst" -lt 1500 ] || fail "searches during the cut wait ($worst ms)"
wait "$IDX_PID" || true
sleep 1
ip -n "$SW" link set "p${ID}2" up
T_HEAL=$(date +%s%N)
healed=; n=0
while [ $n -lt 60 ] && [ "$(ms_since "$T_HEAL")" -lt 10000 ]; do
  read -r kind ms <<<"$(search1 "zebracorn secret 7")"
  n=$((n + 1))
  if [ "$kind" = complete ]; then healed=$(ms_since "$T_HEAL"); break; fi
done
echo "heal: complete answers again $healed ms after the link came back"
[ -n "$healed" ] || fail "no complete answer after healing"
[ "$healed" -lt 3000 ] || fail "complete answers took $healed ms after healing"
sleep 2
"$PY" -c 'import json
for i in range(40): print(json.dumps({"id": f"q{i}", "text": f"written during the cut {i} zebracorn"}))' >"$TMP/h2/cutq.jsonl"
cli search -f flow.yml --workspace ws --queries cutq.jsonl -k 1 --json >"$TMP/cut.out" 2>/dev/null || fail "search after healing"
"$PY" - "$TMP/cut.out" <<'PY' || fail "index parts sent during the cut were applied late"
import json, sys
def shard(s):
    h = 14695981039346656037
    for b in s.encode():
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h % 2
late = 0; found = 0
for i, l in enumerate(map(json.loads, open(sys.argv[1]))):
    assert not l["partial"], l
    hit = bool(l["matches"]) and l["matches"][0]["id"] == f"cut{i}" and l["matches"][0]["score"] < 1e-3
    found += hit
    late += hit and shard(f"cut{i}") == 1
print(f"cut: {found} of 40 documents indexed during the cut are stored (all on the live shard 0); "
      f"{late} applied late on shard 1")
assert late == 0
PY

# ---- h3 dies (every process of the namespace) and comes back ----
for p in $(ip netns pids "${NS[2]}"); do kill -KILL "$p" 2>/dev/null || true; done
wait "${PIDS[2]}" 2>/dev/null || true
T_KILL=$(date +%s%N)
read -r kind ms <<<"$(search1 "zebracorn secret 9")"
echo "host h3 killed: a search $(ms_since "$T_KILL") ms later is $kind ($ms ms)"
[ "$kind" = partial ] || fail "search after h3 died: $kind"

# while shard 1 is gone, another key of the flow (the pod key, from h1)
# claims shard-1: the router refuses it, nothing is routed to it
(cd "$TMP/h1" && inns 0 timeout 30 "$PY" - "${ADDR[0]}" <<'PY'
import os, sys, time
sys.path.insert(0, os.environ["NFLOW_PY_PROTO_DIR"])
sys.path.insert(0, os.environ["NFLOW_E2E_DIR"])
import zmq, zmq.auth
import nflow_pb2 as pb
import nfwire as nw
pub, sec = zmq.auth.load_certificate("keys/pod.key")
srv, _ = zmq.auth.load_certificate("keys/pod.pub")
s = zmq.Context().socket(zmq.DEALER)
s.linger = 0; s.identity = b"shard-1"
s.curve_publickey, s.curve_secretkey, s.curve_serverkey = pub, sec, srv
s.connect(f"tcp://{sys.argv[1]}:7021")
hello = nw.frames(pb.Control(command=pb.CONTROL_HELLO, shard=1, ready=True))
t = time.time()
while time.time() - t < 1.0:
    try: s.send_multipart(hello, zmq.NOBLOCK)
    except zmq.Again: pass
    time.sleep(0.1)
term = nw.frames(pb.Control(command=pb.CONTROL_TERMINATE), request_id=3)
s.send_multipart(term, zmq.NOBLOCK)                 # not served on --shards
time.sleep(0.2)
# an authenticated peer sending garbage into the router's and reducer's
# inputs: malformed input, counted, nothing more
for port in (7020, 7030):
    p = zmq.Context.instance().socket(zmq.PUSH)
    p.linger = 1000
    p.curve_publickey, p.curve_secretkey, p.curve_serverkey = pub, sec, srv
    p.connect(f"tcp://{sys.argv[1]}:{port}")
    for junk in (b"\xff" * 64, b"", b"\x08\x63" + b"garbage" * 10):
        p.send(junk)
    p.close()
PY
) || fail "the pod-key impostor script failed"
grep -q "shard 1 refused .*holds key 'pod'" "$TMP/h1/up.err" || fail "the router did not refuse the pod key as shard-1"
grep -q "\[router\] terminating" "$TMP/h1/up.err" && fail "a TERMINATE on the router's --shards stopped it"
read -r kind ms <<<"$(search1 "zebracorn secret 9")"
[ "$kind" = partial ] || fail "with shard 1 dead and a pod key posing as it, a search is $kind"
echo "impostor: the flow's pod key claiming shard-1 is refused by the router; searches stay partial"

# ---- a host with a different flow (metric cosine) is refused by name ----
mkdir -p "$TMP/h3x/keys" && cp "$TMP"/h3/keys/* "$TMP/h3x/keys/"
flow cosine >"$TMP/h3x/flow.yml"
if (cd "$TMP/h3x" && inns 2 timeout 30 "$NFLOW_BIN" up flow.yml --host "${ADDR[2]}" --workspace ws \
      >/dev/null 2>"$TMP/h3x/up.err"); then fail "a launcher with another flow was accepted"; fi
grep -q "runs a different flow: pod.indexer.with.metric: cosine here, l2 there" "$TMP/h3x/up.err" \
  || fail "the refusal does not name the key: $(cat "$TMP/h3x/up.err")"
# the first pod of another host that answers names its host (h1's or h2's)
grep -Eq "on host 10\.77\.0\.[12]\b" "$TMP/h3x/up.err" \
  || fail "the refusal does not name the host: $(cat "$TMP/h3x/up.err")"
echo "different flow: $(grep -o 'pod [^ ]* on host [^ ]* runs a different flow: [^;]*' "$TMP/h3x/up.err" | head -1)"
grep -q "shard 1 refused .*different flow: pod.indexer.with.metric" "$TMP/h1/up.err" \
  && echo "router: $(grep -o 'shard 1 refused .*different flow: [^)]*' "$TMP/h1/up.err" | head -1)"

start_host 3
wait_ready 3
T_BACK=$(date +%s%N)
back=; n=0
while [ $n -lt 60 ] && [ "$(ms_since "$T_BACK")" -lt 10000 ]; do
  read -r kind ms <<<"$(search1 "zebracorn secret 9")"
  n=$((n + 1))
  [ "$kind" = complete ] && { back=$(ms_since "$T_BACK"); break; }
done
echo "h3 restarted: complete answers $back ms after its launcher was ready"
[ -n "$back" ] || fail "no complete answer after h3 came back"
r=$(recall r3.jsonl)
echo "recall@1 after the cut, the kill and the restart: $r"
[ "$r" = "1.000" ] || fail "recall $r"
(cd "$TMP/h2" && inns 1 timeout 30 "$NFLOW_BIN" status -f flow.yml --workspace nows --json) >"$TMP/status2.jsonl" \
  || fail "status at the end"
[ "$(grep -c '"up":true' "$TMP/status2.jsonl")" -eq 6 ] || fail "a pod is down at the end: $(cat "$TMP/status2.jsonl")"
"$PY" - "$TMP/status2.jsonl" <<'PY' || fail "garbage from an authenticated peer was not counted as malformed"
import json, sys
m = {l["pod"]: l["malformed"] for l in map(json.loads, open(sys.argv[1]))}
print("malformed frames counted (authenticated garbage, the refused impostors):", m)
assert m["router"] >= 1 and m["reducer"] >= 1
PY
grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}\.[0-9]{3}Z \[router\]' "$TMP/h1/up.err" \
  || fail "pod log lines carry no ISO 8601 time"
echo "hosts_netns: ok in $(ms_since "$T_START") ms"
