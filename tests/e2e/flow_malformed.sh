#!/usr/bin/env bash
# Garbage on every socket a client can reach (from flow.state): random
# bytes, empty frames, multi-frame messages, one-frame (version 1) Envelopes
# of version 99 and with bodies that do not belong on that socket, a
# truncated protobuf, and protocol-2 messages that lie: a body that is not
# the kind its header names, an unknown body kind, id offsets past the ids'
# bytes, a vector block that is not count x dim x 4; then a NaN vector sent
# past the gateway to the router, which the shard refuses alone (the good
# request beside it is stored).  Afterwards every pod is still up, a normal
# search works, and `nflow status` shows malformed counters > 0.
set -euo pipefail
. "$(dirname "$0")/flow_lib.sh"

cat >"$TMP/flow.yml" <<YML
version: 1
name: e2e-garbage
gateway: {with: {timeout_ms: 3000}}
pods:
  - {name: encoder, uses: encoder, with: {dim: 64}}
  - {name: indexer, uses: indexer, shards: 2, with: {dim: 64}}
YML
printf '%s\n' '{"id": "a", "text": "the quick brown fox jumps over the lazy dog"}' \
  '{"id": "b", "text": "a journey of a thousand miles begins with a single step"}' >"$TMP/docs.jsonl"
# documents with and without vectors in one file: one request per run (one vector block each)
"$PY" -c 'import json; print(json.dumps({"id": "c", "vector": [0.125] * 64}))' >>"$TMP/docs.jsonl"
echo '{"id": "d", "text": "all that glitters is not gold"}' >>"$TMP/docs.jsonl"

start_flow "$TMP/flow.yml"
F=(-f "$TMP/flow.yml" --workspace "$WS")
out=$(nf index "${F[@]}" "$TMP/docs.jsonl")
[ "$out" = "indexed 4, rejected 0, failed 0" ] || fail "mixed index printed '$out'"

timeout 60 "$PY" - "$WS/flow.state" <<'PY' || fail "sending garbage failed"
import json, math, os, struct, sys
import zmq

def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)

def field(num, wire, payload):
    key = varint((num << 3) | wire)
    return key + (varint(payload) if wire == 0 else varint(len(payload)) + payload)

ping = field(13, 2, field(1, 0, 1))                      # control {command: PING}
v99 = field(1, 0, 99) + field(2, 0, 5) + ping            # version 99
nobody = field(1, 0, 1) + field(2, 0, 6)                 # no body at all
wrong = [field(1, 0, 1) + field(2, 0, 7) + field(14, 2, b""),   # a result
         field(1, 0, 1) + field(2, 0, 8) + field(15, 2, field(1, 0, 9)),  # a plan for shard 9
         field(1, 0, 1) + field(2, 0, 9) + field(12, 2, field(2, 0, 3))]  # a search without queries
badvec = field(1, 0, 1) + field(2, 0, 10) + field(10, 2, field(1, 2, field(1, 2, b"x") + field(3, 2, b"abc")))
truncated = v99[:-1] + b"\xff\xff"
garbage = [os.urandom(64), b"", b"\x08", truncated, v99, nobody, badvec] + wrong
def header(rid, kind):                                   # protocol 2: Header{2, id, body}
    return field(1, 0, 2) + field(2, 0, rid) + field(7, 0, kind)
v2 = [[header(20, 10), b"\x0f\x01"],                   # not an IndexBatch
      [header(21, 99), b""],                              # no such body kind
      [header(22, 10), field(1, 0, 2) + field(3, 2, b"ab") + field(4, 2, bytes([1, 9]))],
      [header(23, 10), field(1, 0, 1) + field(3, 2, b"a") + field(4, 2, bytes([1]))
                       + field(2, 0, 8) + field(5, 2, b"abc")],       # 3 bytes of vectors
      [header(24, 12), field(1, 0, 2000)],                # 2000 queries
      [header(25, 0), b"x"]]                              # no body kind, a body

state = json.load(open(sys.argv[1]))
ctx = zmq.Context()
kinds = {"--clients": zmq.DEALER, "--control": zmq.DEALER, "--shards": zmq.DEALER,
         "--in": zmq.PUSH, "--results": zmq.PUSH}
socks = []
sent = 0
for pod in state["pods"]:
    for opt, ep in pod["binds"].items():
        s = ctx.socket(kinds[opt])
        s.setsockopt(zmq.LINGER, 1000)
        s.connect(ep)
        for g in garbage:
            s.send(g)
            sent += 1
        for g in v2:
            s.send_multipart(g)
            sent += 1
        s.send_multipart([b"one", b"two", b"three"])
        s.send_multipart([b"", b""])
        socks.append((pod["name"], opt, s))
# answers on ROUTER sockets are allowed (errors); read what comes, bounded
poller = zmq.Poller()
for _, _, s in socks:
    if s.type == zmq.DEALER:
        poller.register(s, zmq.POLLIN)
answers = 0
for _ in range(50):
    ready = dict(poller.poll(100))
    if not ready:
        break
    for s in ready:
        while s.poll(0):
            s.recv_multipart()
            answers += 1
for _, _, s in socks:
    s.close()

# a value that is not finite, sent past the gateway (which would refuse it)
# straight to the router: the shard refuses that request alone; the good
# request sent with it is stored (checked below: 4 documents before, 5 after)
def batch(doc_id, values):
    return (field(1, 0, 1) + field(2, 0, 64) + field(3, 2, doc_id)
            + field(4, 2, varint(len(doc_id))) + field(5, 2, struct.pack("<64f", *values)))
router = next(p for p in state["pods"] if p["name"] == "router")
s = ctx.socket(zmq.PUSH)
s.setsockopt(zmq.LINGER, 2000)
s.connect(router["binds"]["--in"])
s.send_multipart([header(40, 10), batch(b"direct-ok", [0.25] * 64)])
s.send_multipart([header(41, 10), batch(b"direct-nan", [0.5] * 63 + [math.nan])])
s.close()
ctx.term()
print(f"sent {sent} garbage messages to {len(socks)} sockets, got {answers} answers")
PY

live_rows() {
  nf status "${F[@]}" --json | "$PY" -c 'import json,sys; print(sum(json.loads(l).get("rows", 0) for l in sys.stdin))'
}
for _ in $(seq 100); do      # the good one stored: at most 10 s
  [ "$(live_rows)" -ge 5 ] && break
  sleep 0.1
done
sleep 0.5                    # and the NaN one, had it been stored, by now
rows=$(live_rows)
[ "$rows" = 5 ] || fail "after a good and a NaN request sent to the router: $rows rows, expected 5"

# still serving: a normal search finds the fox
nf search "${F[@]}" --text "quick brown fox" -k 1 --json >"$TMP/r.jsonl" || fail "search after garbage failed"
grep -q '"id":"a"' "$TMP/r.jsonl" || fail "search after garbage: $(cat "$TMP/r.jsonl")"
# queries with and without vectors in one file: numbered in file order
{ echo '{"text": "quick brown fox"}'
  "$PY" -c 'import json; print(json.dumps({"vector": [0.125] * 64}))'
  echo '{"text": "glitters gold"}'; } >"$TMP/q.jsonl"
nf search "${F[@]}" --queries "$TMP/q.jsonl" -k 1 --json >"$TMP/q.out" || fail "mixed queries failed"
"$PY" - "$TMP/q.out" <<'PY' || fail "mixed queries: $(cat "$TMP/q.out")"
import json, sys
got = [json.loads(l) for l in open(sys.argv[1])]
assert [g["query"] for g in got] == [0, 1, 2], got
assert [g["matches"][0]["id"] for g in got] == ["a", "c", "d"], got
PY

nf status "${F[@]}" --json >"$TMP/status.jsonl"
"$PY" - "$TMP/status.jsonl" <<'PY' || fail "status after garbage: $(cat "$TMP/status.jsonl")"
import json, sys
pods = [json.loads(l) for l in open(sys.argv[1])]
assert len(pods) == 6, pods
for p in pods:
    assert p["up"], p
    assert p["malformed"] > 0, p
print("every pod up, malformed counters:", {p["pod"]: p["malformed"] for p in pods})
PY
grep -q "malformed frame from" "$TMP/up.err" || fail "no malformed-frame log line"
nf status "${F[@]}" | grep -q '^gateway *up' || fail "readable status"

stop_flow
echo "flow_malformed: ok"
