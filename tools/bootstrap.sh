#!/usr/bin/env bash
# nflow bootstrap: install what is missing, build, then run one job.
#
#   tools/bootstrap.sh demo    install, build, start flows/demo.yml, index the
#                              fortunes corpus, run a few searches, stop
#   tools/bootstrap.sh test    install, build, run every test suite; ends with
#                              a plain "N passed, N failed" line
#   tools/bootstrap.sh build   install and build only
#
# Works on a fresh Debian 12 as root (or with sudo).  Builds in ./build.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
job=${1:-build}
builddir=${NFLOW_BUILDDIR:-build}

# Debian packages: build tools, the libraries nflow links, and what the
# anchors, the Python example pod and the demo corpus need.
packages=(
  build-essential pkg-config meson ninja-build
  libzmq3-dev libczmq-dev libprotobuf-c-dev protobuf-c-compiler
  libopenblas-dev libyaml-dev libjansson-dev libxxhash-dev
  protobuf-compiler python3 python3-numpy python3-faiss python3-zmq python3-protobuf
  fortunes-min fortunes procps iproute2 tcpdump
)

install_missing() {
  local missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  echo "bootstrap: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -q
  "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# Quiet when all is well; the whole output when a step fails.
quietly() {
  local log
  log=$(mktemp)
  if ! "$@" >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    echo "bootstrap: '$*' failed" >&2
    return 1
  fi
  rm -f "$log"
}

build() {
  if [ ! -f "$builddir/build.ninja" ]; then
    quietly meson setup "$builddir" --buildtype=release
  fi
  quietly ninja -C "$builddir"
}

run_tests() {
  local rc=0
  meson test -C "$builddir" --print-errorlogs --num-processes 2 "$@" || rc=$?
  # meson's own summary is not a plain tally: count from its JSON log.
  /usr/bin/python3 - "$builddir/meson-logs/testlog.json" <<'PY'
import json, sys
passed = failed = skipped = 0
with open(sys.argv[1]) as f:
    for line in f:
        r = json.loads(line)["result"]
        if r in ("OK", "EXPECTEDFAIL"): passed += 1
        elif r == "SKIP": skipped += 1
        else: failed += 1
print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
PY
  return $rc
}

install_missing
build
case "$job" in
  build) ;;
  test) shift; run_tests "$@" ;;
  demo) exec "$here/tools/demo.sh" "$builddir" ;;
  *) echo "usage: tools/bootstrap.sh demo|test|build" >&2; exit 2 ;;
esac
