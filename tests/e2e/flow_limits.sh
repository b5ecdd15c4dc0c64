#!/usr/bin/env bash
# Hardening (issue 7): one request never crashes a pod, stalls the flow or
# takes gigabytes, and the client tools fail clearly and fast.
#  - a document with 600,000 empty tags (to the gateway and straight to the
#    router): STATUS_BAD_REQUEST naming NF_TAGS_MAX, every shard alive;
#  - Plans with nqueries 100,000,000 and 2^32-1 pushed to the reducer: refused,
#    the reducer stays small and answers the next search at once;
#  - a stored 20 MB text matched by 20 queries x top_k 10,000: STATUS_TOO_LARGE
#    in well under a second, no pod grows past a few hundred MB; --ids-only works;
#  - a NaN query, an empty / 10 KB delete id, a 3-byte vector: BAD_REQUEST naming why;
#  - top_k 0 gives NF_TOPK_DEFAULT (10) matches;
#  - an index request whose deadline passed is not applied by the shard;
#  - `nflow search --queries` with 300 queries (5 requests, 4 in flight);
#  - `nflow index` with bad records: each reported (file:line, id, why) and
#    skipped, the rest stored, `indexed N, rejected M, failed 0`, exit 1;
#  - `nflow status --gateway DEAD` says down and exits 1 within --timeout-ms;
#    `nflow index|delete --gateway DEAD` give up within seconds.
set -euo pipefail
. "$(dirname "$0")/flow_lib.sh"
: "${NFLOW_SOURCE_ROOT:?}"

cat >"$TMP/flow.yml" <<YML
version: 1
name: e2e-limits
gateway: {with: {timeout_ms: 5000}}
pods:
  - name: indexer
    uses: indexer
    shards: 2
    with: {dim: 8, metric: l2}
  - name: reducer
    uses: reducer
YML

protoc --python_out="$TMP" -I "$NFLOW_SOURCE_ROOT/proto" "$NFLOW_SOURCE_ROOT/proto/nflow.proto" \
  || fail "protoc"

"$PY" - "$TMP" <<'PY'
import json, sys
tmp = sys.argv[1]
# one stored document with a 20 MB text (built straight into shard 0's
# segment: the gateway refuses texts over NF_TEXT_MAX now)
with open(f"{tmp}/big.jsonl", "w") as f:
    f.write(json.dumps({"id": "big", "vector": [0.5] * 8, "text": "x" * (20 << 20)}) + "\n")
with open(f"{tmp}/docs.jsonl", "w") as f:
    for i in range(200):
        f.write(json.dumps({"id": f"d{i}", "vector": [float(i % 7)] * 8,
                            "text": f"doc {i}", "tags": {"n": str(i)}}) + "\n")
        if i == 50:
            f.write("{this is not json\n")                                  # line 52
        if i == 100:
            f.write(json.dumps({"id": "many-tags", "vector": [1.0] * 8,
                                "tags": {f"k{j}": "v" for j in range(100)}}) + "\n")  # 103
        if i == 150:
            f.write(json.dumps({"id": "short", "vector": [1.0] * 3}) + "\n")  # line 154
with open(f"{tmp}/q300.jsonl", "w") as f:
    for i in range(300):
        f.write(json.dumps({"vector": [float(i % 7) + 0.1] * 8}) + "\n")
with open(f"{tmp}/q20.jsonl", "w") as f:
    for i in range(20):
        f.write(json.dumps({"vector": [0.5] * 8}) + "\n")
PY
mkdir -p "$WS/indexer"
nf segment build "$WS/indexer/shard-0" "$TMP/big.jsonl" --metric l2 >/dev/null \
  || fail "segment build of the big document"

start_flow "$TMP/flow.yml"
F=(-f "$TMP/flow.yml" --workspace "$WS")
shard_pids="$(state_get indexer/0 pid) $(state_get indexer/1 pid)"

# --- nflow index with bad records -------------------------------------------------
rc=0
nf index "${F[@]}" --batch 64 "$TMP/docs.jsonl" >"$TMP/idx.out" 2>"$TMP/idx.err" || rc=$?
[ "$rc" -eq 1 ] || fail "index with bad records: exit $rc, expected 1: $(cat "$TMP/idx.out" "$TMP/idx.err")"
[ "$(cat "$TMP/idx.out")" = "indexed 200, rejected 3, failed 0" ] \
  || fail "index counts: $(cat "$TMP/idx.out" "$TMP/idx.err")"
grep -q "rejected id '?' (.*docs.jsonl:52): bad JSON" "$TMP/idx.err" || fail "bad JSON line: $(cat "$TMP/idx.err")"
grep -q "rejected id 'many-tags' (.*docs.jsonl:103): STATUS_BAD_REQUEST: tags per document (NF_TAGS_MAX): 100, at most 64" "$TMP/idx.err" \
  || fail "100 tags: $(cat "$TMP/idx.err")"
grep -q "rejected id 'short' (.*docs.jsonl:154): vector has 3 values, expected 8" "$TMP/idx.err" \
  || fail "short vector: $(cat "$TMP/idx.err")"
rc=0
nf index "${F[@]}" --batch 64 --stop-on-error "$TMP/docs.jsonl" >"$TMP/strict.out" 2>&1 || rc=$?
[ "$rc" -eq 1 ] && grep -q "docs.jsonl:52" "$TMP/strict.out" || fail "--stop-on-error: $(cat "$TMP/strict.out")"

# --- many requests in flight from the CLI (segfaulted past 64 queries) ---------
nf search "${F[@]}" --queries "$TMP/q300.jsonl" -k 3 --ids-only --json >"$TMP/q300.out" \
  || fail "search of 300 queries failed"
[ "$(grep -c '"query":' "$TMP/q300.out")" -eq 300 ] || fail "300 queries: $(wc -l <"$TMP/q300.out") lines"
"$PY" - "$TMP/q300.out" <<'PY' || fail "300 queries: wrong answers"
import json, sys
for i, line in enumerate(open(sys.argv[1])):
    r = json.loads(line)
    assert r["query"] == i and len(r["matches"]) == 3 and not r["partial"], r
    assert all("text" not in m for m in r["matches"]), r     # --ids-only
PY

# --- raw messages (protocol 2, tests/e2e/nfwire.py) --------------------------------------------------------------
timeout 120 "$PY" - "$TMP" "$WS/flow.state" "$GATEWAY" <<'PY' || fail "raw message checks failed"
import json, math, os, resource, struct, sys, time
sys.path[:0] = [os.environ.get("NFLOW_PY_PROTO_DIR")
                or os.path.join(os.environ["NFLOW_BUILD_ROOT"], "pods", "python"),
                os.path.join(os.environ["NFLOW_SOURCE_ROOT"], "tests", "e2e")]
import zmq
import nflow_pb2 as pb
import nfwire as nw

state = json.load(open(sys.argv[2]))
gateway = sys.argv[3]
pods = {p["name"]: p for p in state["pods"]}
ctx = zmq.Context()
cl = ctx.socket(zmq.DEALER)
cl.setsockopt(zmq.LINGER, 0)
cl.connect(gateway)
next_id = [1000]

def call(body, timeout_ms=8000, time_left_us=0):
    next_id[0] += 1
    rid = next_id[0]
    t0 = time.monotonic()
    cl.send_multipart(nw.frames(body, rid, time_left_us))
    while True:
        if not cl.poll(timeout_ms):
            raise SystemExit(f"no answer to request {rid} within {timeout_ms} ms")
        head, ans = nw.parse(cl.recv_multipart())
        if head.request_id == rid:
            return head, ans, time.monotonic() - t0

vec = nw.vec

def status(pod):
    d = ctx.socket(zmq.DEALER)
    d.setsockopt(zmq.LINGER, 0)
    d.connect(pods[pod]["control"])
    d.send_multipart(nw.frames(pb.Control(command=pb.CONTROL_STATUS), 1))
    assert d.poll(3000), f"{pod} does not answer STATUS"
    _, c = nw.parse(d.recv_multipart())
    d.close()
    return c

def expect(head, code, *words):
    name = pb.StatusCode.Name(head.status.code)
    assert head.status.code == code, (name, head.status.message)
    for w in words:
        assert w in head.status.message, (w, head.status.message)
    print(f"  {name}: {head.status.message}")

# 600,000 empty tags in one document: BAD_REQUEST naming the limit
big = pb.IndexBatch(count=1, ids=b"x", id_ends=[1], dim=8, vectors=vec([0.0] * 8))
big.tag_ends.append(600000)
big.tag_key_ends.extend([0] * 600000)
big.tag_value_ends.extend([0] * 600000)
head, _, _ = call(big)
expect(head, pb.STATUS_BAD_REQUEST, "NF_TAGS_MAX")
# the same straight into the router (bypassing the gateway): refused there too
push = ctx.socket(zmq.PUSH)
push.setsockopt(zmq.LINGER, 1000)
push.connect(pods["router"]["binds"]["--in"])
push.send_multipart(nw.frames(big, 4242))
# counts that do not fit the frame: 10,000 id ends over 1 byte of ids
lie = pb.IndexBatch(count=10000, ids=b"x", id_ends=[1] * 9999 + [7])
head, _, _ = call(lie)
expect(head, pb.STATUS_BAD_REQUEST, "id ends")
# a version-1 envelope (one frame): STATUS_BAD_VERSION naming both versions, in one
# frame a version-1 client can read
next_id[0] += 1
cl.send(b"\x08\x01\x10" + bytes([next_id[0] & 0x7f]) + b"\x52\x00")
assert cl.poll(8000), "no answer to a version-1 envelope"
parts = cl.recv_multipart()
assert len(parts) == 1, f"a version-1 client got {len(parts)} frames"
head = pb.Header.FromString(parts[0])
expect(head, pb.STATUS_BAD_VERSION, "protocol 1", "speaks 2")

# Plans with nqueries 100,000,000 and 2^32-1 straight into the reducer
red = ctx.socket(zmq.PUSH)
red.setsockopt(zmq.LINGER, 1000)
red.connect(pods["reducer"]["binds"]["--in"])
for nq in (100000000, 2**32 - 1):
    red.send_multipart(nw.frames(pb.Plan(kind=12, top_k=1, nqueries=nq), 777000 + (nq & 0xff)))
time.sleep(0.3)
rss = status("reducer").rss_bytes
assert rss < 200 << 20, f"reducer RSS {rss >> 20} MiB after the plans"
print(f"  reducer after the plans: {rss >> 20} MiB")

# a NaN query: BAD_REQUEST (was OK with 0 matches)
head, _, _ = call(nw.search([[1.0, float("nan")] + [0.0] * 6]))
expect(head, pb.STATUS_BAD_REQUEST, "vector[1] is NaN")
head, _, _ = call(nw.search([[math.inf] * 8]))
expect(head, pb.STATUS_BAD_REQUEST, "infinite")
# a 3-byte vector block: its real length (was "0 values")
s = pb.SearchRequest(count=1, dim=8, vectors=b"abc")
head, _, _ = call(s)
expect(head, pb.STATUS_BAD_REQUEST, "3 bytes")
# a filter over a field this flow does not declare: refused by the gateway, naming it
s = nw.search([[1.0] * 8])
s.filter = 'year >= 2000'
head, _, _ = call(s)
expect(head, pb.STATUS_BAD_REQUEST, "filter:1:1: 'year' is not a field (fields: none)")
# a filter of more than NF_FILTER_BYTES_MAX bytes: over the limit
s.filter = 'year >= 2000 or ' * 300 + 'year > 1'
head, _, _ = call(s)
expect(head, pb.STATUS_BAD_REQUEST, "NF_FILTER_BYTES_MAX")

# top_k 0: NF_TOPK_DEFAULT (10) everywhere
s = nw.search([[1.0] * 8], with_payload=True)
head, ans, t = call(s)
assert head.body == pb.BODY_RESULT, head
n = len(ans.results[0].matches)
assert n == 10, f"top_k 0 gave {n} matches, expected 10"
m = ans.results[0].matches[0]
assert m.text.startswith("doc ") and m.tags["n"], m
print(f"  top_k 0: {n} matches (answered in {t * 1000:.0f} ms, after the plans)")
assert t < 2.0, t
s.with_payload = False
head, ans, _ = call(s)
assert ans.results[0].matches[0].text == "", "text without with_payload"

# deletes: an empty id and a 10 KB id are bad requests (were STATUS_INTERNAL)
head, _, _ = call(nw.delete([""]))
expect(head, pb.STATUS_BAD_REQUEST, "empty id")
head, _, _ = call(nw.delete(["x" * 10240]))
expect(head, pb.STATUS_BAD_REQUEST, "10240", "NF_ID_MAX")

# an index request whose time is spent is never applied by a shard: time left
# travels, each pod measures it on its own monotonic clock
def late_index(doc_id, time_left_us):
    b = nw.index_batch([{"id": doc_id, "vector": [42.0] * 8}])
    push.send_multipart(nw.frames(b, 888000 + len(doc_id), time_left_us))
late_index("late-doc", 1)
late_index("in-time-doc", 5000000)
time.sleep(0.5)
head, ans, _ = call(nw.search([[42.0] * 8], top_k=2))
ids = [m.id for m in ans.results[0].matches]
assert "in-time-doc" in ids, ids
assert "late-doc" not in ids, f"an expired write was applied: {ids}"
print(f"  expired write dropped, the one in time stored: {ids}")

# the stored 20 MB text x 20 queries x top_k 10,000: a clear error, not 400 MB
s = nw.search([[0.5] * 8] * 20, top_k=10000, with_payload=True)
head, ans, t = call(s, 20000)
expect(head, pb.STATUS_TOO_LARGE, "NF_ANSWER_MAX")
print(f"  20 queries x top_k 10,000 over a 20 MB text: answered in {t * 1000:.0f} ms")
assert t < 5.0, t
s.with_payload = False
head, ans, t = call(s, 20000)
assert head.body == pb.BODY_RESULT, head
assert all(len(r.matches) == 202 for r in ans.results), [len(r.matches) for r in ans.results]
for pod in ("gateway", "reducer", "indexer/0", "indexer/1"):
    rss = status(pod).rss_bytes
    print(f"  {pod}: {rss >> 20} MiB")
    assert rss < 400 << 20, f"{pod} RSS {rss >> 20} MiB"
cl.close()
push.close()
red.close()
ctx.term()
PY

for p in $shard_pids; do kill -0 "$p" 2>/dev/null || fail "shard pid $p died"; done
nf status "${F[@]}" >"$TMP/status.out" || fail "a pod is down: $(cat "$TMP/status.out")"
grep -Eq '^reducer +up .* [1-9][0-9]* +- ' "$TMP/status.out" || fail "reducer malformed not counted: $(cat "$TMP/status.out")"

# --- CLI: fail fast and clearly --------------------------------------------------
start=$(date +%s%N)
rc=0
nf delete "${F[@]}" '' >"$TMP/del.out" 2>&1 || rc=$?
ms=$(( ($(date +%s%N) - start) / 1000000 ))
[ "$rc" -eq 2 ] && grep -q "ids have 1..256 bytes" "$TMP/del.out" || fail "delete '': exit $rc: $(cat "$TMP/del.out")"
[ "$ms" -lt 1000 ] || fail "delete '' took $ms ms"

dead=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
start=$(date +%s%N)
rc=0
nf status --gateway "tcp://127.0.0.1:$dead" --timeout-ms 300 >"$TMP/st.out" 2>&1 || rc=$?
ms=$(( ($(date +%s%N) - start) / 1000000 ))
[ "$rc" -eq 1 ] && grep -Eq '^gateway +down' "$TMP/st.out" || fail "status of a dead gateway: exit $rc: $(cat "$TMP/st.out")"
[ "$ms" -lt 1500 ] || fail "status --timeout-ms 300 took $ms ms"
for cmd in "index $TMP/docs.jsonl" "delete d1" "search --text x"; do
  start=$(date +%s%N)
  rc=0
  # shellcheck disable=SC2086
  nf $cmd --gateway "tcp://127.0.0.1:$dead" >"$TMP/dead.out" 2>&1 || rc=$?
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  [ "$rc" -ne 0 ] && grep -q "no gateway answers at tcp://127.0.0.1:$dead" "$TMP/dead.out" \
    || fail "$cmd to a dead gateway: exit $rc: $(cat "$TMP/dead.out")"
  [ "$ms" -lt 5000 ] || fail "$cmd to a dead gateway took $ms ms"
  echo "  nflow ${cmd%% *} --gateway DEAD: gave up in $ms ms"
done

stop_flow
echo "flow_limits: ok"
