#!/usr/bin/env bash
# One short libFuzzer run, as the `fuzz` test suite does it:
#   tests/fuzz/run.sh FUZZER SEED_DIR SECONDS
# New inputs go to a temporary directory (the seeds in tests/fuzz/corpus are
# only read); a crash is written to $NFLOW_BUILD_ROOT/fuzz-artifacts (or
# the current directory) and fails the test.  To fuzz longer by hand:
#   build-asan/tests/fuzz/fuzz_frame -max_total_time=600 NEW_DIR tests/fuzz/corpus/frame
set -euo pipefail
fuzzer=$1 seeds=$2 seconds=$3
[ -d "$seeds" ] || { echo "no seed directory $seeds" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/nflow-fuzz-XXXXXX")
trap 'rm -rf "$work"' EXIT
artifacts=${NFLOW_BUILD_ROOT:-.}/fuzz-artifacts
mkdir -p "$artifacts"
export TMPDIR=$work
mkdir "$work/new"
exec "$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix="$artifacts/$(basename "$fuzzer")-" "$work/new" "$seeds"
