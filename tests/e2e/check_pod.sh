#!/usr/bin/env bash
# check_pod: `nflow check-pod` drives an executor through the flow protocol.
# The C encoder and the Python example encoder must pass every check (the
# Python one also without NFLOW_PY_PROTO_DIR: check-pod finds nflow_pb2 as
# the launcher does); broken pods (one that exits at once, one that cannot
# be run, one that answers PING but drops requests, one that echoes requests
# without encoding them, and tests/e2e/broken_encoder.py: one that forwards
# a version-99 message, one that leaves malformed control frames
# unanswered, one that drops the empty delimiter from control replies, one
# that miscounts) must make it fail the right check quickly, and check-pod
# must not leave them running.
set -euo pipefail

: "${NFLOW_BIN:?}" "${NFLOW_PODS_DIR:?}" "${NFLOW_SOURCE_ROOT:?}" "${NFLOW_BUILD_ROOT:?}"
PYTHON=${PYTHON:-/usr/bin/python3}
export NFLOW_PY_PROTO_DIR=$NFLOW_BUILD_ROOT/pods/python
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}

# run NAME ARGS...: nflow check-pod ARGS, bounded in time; output in $tmp/NAME.*
run() {
    local name=$1
    shift
    local rc=0
    timeout 120 "$NFLOW_BIN" check-pod "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" || rc=$?
    echo "$rc" >"$tmp/$name.rc"
}

show() {
    sed "s/^/    /" "$tmp/$1.out"
    tail -n 20 "$tmp/$1.err" | sed "s/^/    stderr: /"
}

expect_pass() {
    local name=$1
    shift
    run "$name" "$@"
    if [ "$(cat "$tmp/$name.rc")" != 0 ] || grep -q '^FAIL' "$tmp/$name.out" \
        || ! grep -Eq '^check-pod: [0-9]+ checks passed, 0 failed$' "$tmp/$name.out"; then
        fail "$name: check-pod did not pass (exit $(cat "$tmp/$name.rc"))"
        show "$name"
    else
        echo "ok: $name ($(tail -n 1 "$tmp/$name.out"))"
    fi
}

# expect_fail NAME MAX_SECONDS PATTERN ARGS...: must exit 1 within MAX_SECONDS
# with a line matching PATTERN, and the pod it started must be gone.
expect_fail() {
    local name=$1 max=$2 pattern=$3
    shift 3
    local start=$SECONDS
    run "$name" "$@"
    local took=$((SECONDS - start)) rc
    rc=$(cat "$tmp/$name.rc")
    local pid
    pid=$(sed -n 's/^check-pod: pid \([0-9]*\),.*/\1/p' "$tmp/$name.err" | head -n 1)
    if [ "$rc" != 1 ]; then
        fail "$name: exit $rc, expected 1"
        show "$name"
    elif ! grep -Eq "$pattern" "$tmp/$name.out"; then
        fail "$name: no line matching '$pattern'"
        show "$name"
    elif [ "$took" -gt "$max" ]; then
        fail "$name: took ${took}s, expected at most ${max}s"
    elif [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        fail "$name: the pod (pid $pid) is still running after check-pod"
        kill -KILL "$pid" 2>/dev/null || true
    else
        echo "ok: $name fails as it should ($(grep -m1 '^FAIL' "$tmp/$name.out"))"
    fi
}

# Usage errors exit 2 without starting anything.
rc=0; "$NFLOW_BIN" check-pod >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "check-pod without a command: exit $rc, expected 2"
rc=0; "$NFLOW_BIN" check-pod --role indexer -- /bin/true >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "check-pod --role indexer: exit $rc, expected 2"
rc=0; "$NFLOW_BIN" check-pod --dim 0 -- /bin/true >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "check-pod --dim 0: exit $rc, expected 2"

# The real encoders pass, at the default dim and at another one.
expect_pass c_encoder -- "$NFLOW_PODS_DIR/nflow-encoder"
expect_pass c_encoder_dim64 --dim 64 -- "$NFLOW_PODS_DIR/nflow-encoder"
expect_pass py_encoder -- "$PYTHON" "$NFLOW_SOURCE_ROOT/pods/python/encoder.py"
expect_pass py_encoder_dim64 --dim 64 --timeout-ms 10000 -- \
    "$PYTHON" "$NFLOW_SOURCE_ROOT/pods/python/encoder.py"

# Without NFLOW_PY_PROTO_DIR (and NFLOW_PODS_DIR): check-pod finds the Python
# binding of the protocol beside its own program, as `nflow up` does.
(unset NFLOW_PY_PROTO_DIR NFLOW_PODS_DIR
 expect_pass py_encoder_no_proto_dir -- "$PYTHON" "$NFLOW_SOURCE_ROOT/pods/python/encoder.py"
 [ "$failures" = 0 ]) || fail "check-pod did not find nflow_pb2 without NFLOW_PY_PROTO_DIR"

# Pods read whatever is not on their command line from NFLOW_* variables:
# run them with the appended options dropped (sh -c keeps only "$0" "$1").
expect_pass c_encoder_env_only -- sh -c 'exec "$0"' "$NFLOW_PODS_DIR/nflow-encoder"
expect_pass py_encoder_env_only -- sh -c 'exec "$0" "$1"' \
    "$PYTHON" "$NFLOW_SOURCE_ROOT/pods/python/encoder.py"

# Broken pods.
expect_fail exits_at_once 10 '^FAIL ready: the pod exited with status 0' -- /bin/true
expect_fail not_runnable 10 '^FAIL ready: the pod exited with status 127' -- "$tmp/no-such-pod"

# A pod that answers the control socket but drops (or merely echoes) every
# request, and ignores both TERMINATE and SIGTERM: check-pod must kill it.
# One that dies on its first request: check-pod says how, and stops there.
cat >"$tmp/broken.py" <<'PY'
import os, signal, sys, time
sys.path.insert(0, os.environ["NFLOW_PY_PROTO_DIR"])
import zmq
import nflow_pb2 as pb

mode = sys.argv[1]
opts = dict(zip(sys.argv[2::2], sys.argv[3::2]))
signal.signal(signal.SIGTERM, signal.SIG_IGN)
ctx = zmq.Context()
pull = ctx.socket(zmq.PULL)
pull.bind(opts["--in"])
out = ctx.socket(zmq.PUSH)
out.connect(opts["--out"])
control = ctx.socket(zmq.ROUTER)
control.bind(opts["--control"])
poller = zmq.Poller()
poller.register(pull, zmq.POLLIN)
poller.register(control, zmq.POLLIN)
until = time.time() + 120
while time.time() < until:
    for sock, _ in poller.poll(200):
        frames = sock.recv_multipart()
        if sock is control:
            head, ctl = pb.Header(), pb.Control()
            try:
                head.ParseFromString(frames[-2])
                ctl.ParseFromString(frames[-1])
            except Exception:
                continue
            reply = pb.Header(version=2, request_id=head.request_id, body=pb.BODY_CONTROL)
            c = pb.Control(command=ctl.command, ready=True, pod=opts["--name"],
                           dim=int(opts["--dim"]))
            control.send_multipart(frames[:-2] + [reply.SerializeToString(),
                                                  c.SerializeToString()])
        elif mode == "echo":
            out.send_multipart(frames)
        elif mode == "crash":
            sys.exit(3)
PY
expect_fail drops_requests 60 '^FAIL index_text: no request on --out' \
    --timeout-ms 300 -- "$PYTHON" "$tmp/broken.py" drop
grep -q '^FAIL terminate: still running' "$tmp/drops_requests.out" \
    || fail "drops_requests: a pod ignoring TERMINATE was not reported"
expect_fail echoes_requests 60 '^FAIL index_text: .*(route has 1 hops|vector of 0 bytes)' \
    --timeout-ms 300 -- "$PYTHON" "$tmp/broken.py" echo
grep -q '^FAIL bad_dim: ' "$tmp/echoes_requests.out" \
    || fail "echoes_requests: a pod not checking dims was not reported"

expect_fail crashes 30 '^FAIL index_text: the pod exited with status 3' \
    -- "$PYTHON" "$tmp/broken.py" crash
grep -q '^check-pod: 2 checks passed, 1 failed$' "$tmp/crashes.out" \
    || fail "crashes: check-pod went on after the pod died"

# One fault each (tests/e2e/broken_encoder.py): each fails its own check.
broken=$NFLOW_SOURCE_ROOT/tests/e2e/broken_encoder.py
expect_fail forwards_v99 60 '^FAIL version_99: a version 99 message was forwarded' \
    --timeout-ms 1000 -- "$PYTHON" "$broken" forward_v99
expect_fail silent_control 60 '^FAIL garbage_control: .*no error answer' \
    --timeout-ms 1000 -- "$PYTHON" "$broken" silent_control
expect_fail drops_delimiter 60 '^FAIL control_delimiter: ' \
    --timeout-ms 1000 -- "$PYTHON" "$broken" no_delimiter
expect_fail miscounts 60 '^FAIL counters: .*errors \+2, malformed \+1' \
    --timeout-ms 1000 -- "$PYTHON" "$broken" miscount
for name in silent_control drops_delimiter miscounts; do
    [ "$(grep -c '^FAIL' "$tmp/$name.out")" = 1 ] \
        || fail "$name: more than the one check for its fault failed: $(grep '^FAIL' "$tmp/$name.out")"
done

# The Python encoder follows lib/nf_encoder.h's recipe: both encoders give
# the very same bytes for the same texts, so they can replace each other.
cat >"$tmp/same.py" <<'PY'
import os, socket, subprocess, sys
sys.path.insert(0, os.environ["NFLOW_PY_PROTO_DIR"])
sys.path.insert(0, os.path.join(os.environ["NFLOW_SOURCE_ROOT"], "tests", "e2e"))
import zmq
import nflow_pb2 as pb
import nfwire as nw

texts = ["Hello world, this is nflow.", "Straße naïve café 東京", "a", "x" * 300 + " tail",
         "MiXeD CaSe 123 abc-def_ghi", "the quick brown fox"]
ctx = zmq.Context()

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

def vectors(command, dim, ngram):
    out = ctx.socket(zmq.PULL)
    port = out.bind_to_random_port("tcp://127.0.0.1")
    ep_in, ep_control = ("tcp://127.0.0.1:%d" % free_port() for _ in range(2))
    pod = subprocess.Popen(command + ["--name", "same/0", "--in", ep_in, "--control", ep_control,
                                      "--out", "tcp://127.0.0.1:%d" % port,
                                      "--dim", str(dim), "--ngram", str(ngram)])
    try:
        push = ctx.socket(zmq.PUSH)
        push.connect(ep_in)
        batch = nw.index_batch([{"id": str(i), "text": text} for i, text in enumerate(texts)])
        push.send_multipart(nw.frames(batch, 1))
        if not out.poll(10000):
            sys.exit("no answer from %s" % command)
        _, got = nw.parse(out.recv_multipart())
        push.close(0)
        out.close(0)
        row = got.dim * 4
        return [got.vectors[i * row:(i + 1) * row] for i in range(got.count)]
    finally:
        pod.terminate()
        try:
            pod.wait(5)
        except subprocess.TimeoutExpired:   # exiting on SIGTERM is checked elsewhere
            print("%s ignored SIGTERM; killed" % command[-1], file=sys.stderr)
            pod.kill()
            pod.wait()

for dim, ngram in [(256, 3), (64, 0), (7, 8)]:
    c = vectors([sys.argv[1]], dim, ngram)
    py = vectors([sys.argv[2], sys.argv[3]], dim, ngram)
    if c != py:
        sys.exit("dim %d ngram %d: the encoders differ on texts %s" % (
            dim, ngram, [t for t, a, b in zip(texts, c, py) if a != b]))
print("same vectors")
PY
if timeout 120 "$PYTHON" "$tmp/same.py" "$NFLOW_PODS_DIR/nflow-encoder" "$PYTHON" \
    "$NFLOW_SOURCE_ROOT/pods/python/encoder.py" >"$tmp/same.out" 2>"$tmp/same.err"; then
    echo "ok: the C and Python encoders give the same vectors"
else
    fail "the C and Python encoders differ: $(tail -n 3 "$tmp/same.err")"
fi

if [ "$failures" -ne 0 ]; then
    echo "check_pod: $failures failure(s)"
    exit 1
fi
echo "check_pod: all good"
