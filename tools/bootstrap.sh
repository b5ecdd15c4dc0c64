#!/usr/bin/env bash
# nflow bootstrap: install what is missing, build, then run one job.
#
#   tools/bootstrap.sh demo    install, build, start flows/demo.yml, index the
#                              fortunes corpus, run a few searches, stop
#   tools/bootstrap.sh test    install, build, run every test suite in three
#                              builds; ends with a plain "N passed, N failed"
#                              line and exits non-zero on any failure:
#                                build        gcc, release: unit, e2e, bench
#                                build-clang  clang, release: unit
#                                build-asan   clang, ASan + UBSan, libFuzzer:
#                                             unit, e2e, fuzz (5 s per target)
#   tools/bootstrap.sh test ARGS...
#                              only ./build, `meson test` ARGS (a suite with
#                              --suite NAME, or test names)
#   tools/bootstrap.sh build   install and build ./build only
#
# Works on a fresh Debian 12 as root (or with sudo).  Builds in ./build
# (NFLOW_BUILDDIR), ./build-clang and ./build-asan.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
job=${1:-build}
builddir=${NFLOW_BUILDDIR:-build}

# Debian packages: build tools, the libraries nflow links, and what the
# anchors, the Python example pod and the demo corpus need.
packages=(
  build-essential pkg-config meson ninja-build clang libclang-rt-14-dev llvm
  libzmq3-dev libczmq-dev libprotobuf-c-dev protobuf-c-compiler
  libopenblas-dev libyaml-dev libjansson-dev libxxhash-dev
  protobuf-compiler python3 python3-numpy python3-faiss python3-zmq python3-protobuf
  fortunes-min fortunes procps iproute2 tcpdump faketime
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

# setup_build DIR [meson setup options...]: configure DIR once.
setup_build() {
  local dir=$1
  shift
  [ -f "$dir/build.ninja" ] || quietly meson setup "$dir" "$@"
}

build() {
  setup_build "$builddir" --buildtype=release
  quietly ninja -C "$builddir"
}

# The other compiler, and the sanitizers with libFuzzer (clang).  The
# sanitizer build is not optimised: clang 14 takes minutes to optimise the
# scan's unrolled kernels with UBSan's checks in them.
build_clang() {
  CC=clang setup_build build-clang --buildtype=release && quietly ninja -C build-clang
}
build_asan() {
  CC=clang setup_build build-asan --buildtype=debug -Db_sanitize=address,undefined \
    -Db_lundef=false -Dfuzz=true && quietly ninja -C build-asan
}

# meson_test DIR ARGS...: run, then tally DIR's JSON log into the totals.
passed=0 failed=0 skipped=0
meson_test() {
  local dir=$1 rc=0 t0 tally
  shift
  t0=$(date +%s)
  meson test -C "$dir" --print-errorlogs --num-processes 2 "$@" || rc=$?
  # meson's own summary is not a plain tally: count from its JSON log.
  tally=$(/usr/bin/python3 - "$dir/meson-logs/testlog.json" <<'PY'
import json, sys
passed = failed = skipped = 0
with open(sys.argv[1]) as f:
    for line in f:
        r = json.loads(line)["result"]
        if r in ("OK", "EXPECTEDFAIL"): passed += 1
        elif r == "SKIP": skipped += 1
        else: failed += 1
print(passed, failed, skipped)
PY
)
  set -- $tally
  echo "bootstrap: $dir: $1 passed, $2 failed, $3 skipped in $(( $(date +%s) - t0 )) s" >&2
  passed=$((passed + $1)) failed=$((failed + $2)) skipped=$((skipped + $3))
  return $rc
}

run_tests() {
  local rc=0
  if [ $# -gt 0 ]; then
    meson_test "$builddir" "$@" || rc=1
  else
    meson_test "$builddir" --suite unit --suite e2e --suite bench || rc=1
    # a build that fails counts as one failed test, and the tally still ends the output
    if build_clang; then meson_test build-clang --suite unit || rc=1
    else echo "bootstrap: build-clang: the build failed" >&2; failed=$((failed + 1)); fi
    if build_asan; then meson_test build-asan --suite unit --suite e2e --suite fuzz || rc=1
    else echo "bootstrap: build-asan: the build failed" >&2; failed=$((failed + 1)); fi
  fi
  echo "$passed passed, $failed failed$([ "$skipped" -eq 0 ] || echo ", $skipped skipped")"
  [ "$failed" -eq 0 ] || rc=1
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
