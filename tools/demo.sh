#!/usr/bin/env bash
# nflow demo: start flows/demo.yml, index Debian's fortunes corpus (each
# fortune's file as the keyword field `file`), run a few text searches and
# one filtered to two files, show the status, stop the flow.
#
#   tools/demo.sh [BUILD_DIR]        (tools/bootstrap.sh demo calls it)
#
# Environment: NFLOW_DEMO_DOCS (how many fortunes to index, default 0 = the whole corpus),
# NFLOW_FORTUNES (corpus directory, default /usr/share/games/fortunes),
# NFLOW_DEMO_WORKSPACE (keep the workspace there instead of a temp dir).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$here/build}" && pwd)
nflow=$build/tools/nflow
export NFLOW_PODS_DIR=${NFLOW_PODS_DIR:-$build/pods}
py=/usr/bin/python3
corpus=${NFLOW_FORTUNES:-/usr/share/games/fortunes}
flow=$here/flows/demo.yml
[ -x "$nflow" ] || { echo "demo: $nflow not found (build first)" >&2; exit 1; }
[ -d "$corpus" ] || { echo "demo: no fortunes corpus in $corpus (apt-get install fortunes)" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/nflow-demo-XXXXXX")
ws=${NFLOW_DEMO_WORKSPACE:-$tmp/workspace}
up_pid=
cleanup() {
  if [ -n "$up_pid" ] && kill -0 "$up_pid" 2>/dev/null; then
    kill -TERM "$up_pid" 2>/dev/null || true
    wait "$up_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

step() { printf '\n==> %s\n' "$*"; }

step "starting the flow: nflow up flows/demo.yml --workspace $ws"
"$nflow" up "$flow" --workspace "$ws" >"$tmp/up.out" 2>"$tmp/up.log" &
up_pid=$!
for _ in $(seq 600); do
  grep -q '^ready ' "$tmp/up.out" && break
  if ! kill -0 "$up_pid" 2>/dev/null; then
    cat "$tmp/up.log" >&2
    echo "demo: nflow up failed" >&2
    exit 1
  fi
  sleep 0.1
done
grep -q '^ready ' "$tmp/up.out" || { cat "$tmp/up.log" >&2; echo "demo: flow not ready after 60 s" >&2; exit 1; }
cat "$tmp/up.out"

step "turning $corpus into JSONL"
"$py" - "$corpus" "${NFLOW_DEMO_DOCS:-0}" "$tmp/fortunes.jsonl" <<'PY'
import json, os, sys
corpus, limit, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
files = sorted(f for f in os.listdir(corpus)
               if not f.endswith((".dat", ".u8")) and os.path.isfile(os.path.join(corpus, f)))
texts = {}
for name in files:
    with open(os.path.join(corpus, name), encoding="utf-8", errors="replace") as f:
        chunks, cur = [], []
        for line in f:
            if line.rstrip("\n") == "%":
                chunks.append("".join(cur).strip())
                cur = []
            else:
                cur.append(line)
        chunks.append("".join(cur).strip())
    texts[name] = [t for t in chunks if t]
# an even share of every file, so that each topic is represented
total = sum(len(t) for t in texts.values())
n = 0
with open(out, "w") as f:
    for name in files:
        share = max(1, len(texts[name]) * limit // max(total, 1)) if limit else len(texts[name])
        for i, t in enumerate(texts[name][:share]):
            f.write(json.dumps({"id": f"fortunes/{name}/{i}", "text": t,
                                "tags": {"file": name}, "file": name}) + "\n")
            n += 1
print(f"{n} fortunes from {len(files)} files")
PY

step "indexing: nflow index -f flows/demo.yml fortunes.jsonl"
# A bad fortune is reported (file:line, id, why) and skipped; the exit
# status is 1 when any was rejected, so read the counts instead.
index_rc=0
"$nflow" index -f "$flow" --workspace "$ws" "$tmp/fortunes.jsonl" \
  >"$tmp/index.out" 2>"$tmp/index.err" || index_rc=$?
cat "$tmp/index.err" >&2
cat "$tmp/index.out"
if ! grep -Eq '^indexed [0-9]+, rejected [0-9]+, failed 0$' "$tmp/index.out"; then
  echo "demo: nflow index failed (exit status $index_rc)" >&2
  exit 1
fi
nrej=$(grep -c '^nflow index: rejected ' "$tmp/index.err" || true)
echo "rejected: $nrej document(s)"
grep '^nflow index: rejected ' "$tmp/index.err" | sed 's/^nflow index: /  /' || true

for q in "computers are only as smart as their programmers" \
         "love and marriage" \
         "the meaning of life, the universe and everything" \
         "a bug in the software"; do
  step "nflow search --text \"$q\" -k 3"
  "$nflow" search -f "$flow" --workspace "$ws" --text "$q" -k 3
done

q="a bug in the software"
step "nflow search --text \"$q\" -k 3 --filter 'file in [\"linux\", \"computers\"]' --fields file"
"$nflow" search -f "$flow" --workspace "$ws" --text "$q" -k 3 \
  --filter 'file in ["linux", "computers"]' --fields file

step "nflow status"
"$nflow" status -f "$flow" --workspace "$ws"

step "stopping the flow (SIGTERM)"
kill -TERM "$up_pid"
rc=0
wait "$up_pid" || rc=$?
up_pid=
if [ "$rc" -ne 0 ]; then
  cat "$tmp/up.log" >&2
  echo "demo: nflow up exited with status $rc" >&2
  exit 1
fi
echo "flow stopped cleanly (exit status 0)"
