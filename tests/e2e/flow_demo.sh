#!/usr/bin/env bash
# tools/demo.sh against this build: it indexes the fortunes corpus, prints
# search results from it, the status, and stops the flow cleanly.
set -euo pipefail
: "${NFLOW_BUILD_ROOT:?}" "${NFLOW_SOURCE_ROOT:?}"
if [ ! -d /usr/share/games/fortunes ]; then
  exec "$NFLOW_SOURCE_ROOT/tests/skip_or_fail.sh" "no fortunes corpus (apt-get install fortunes)"
fi
out=$(mktemp "${TMPDIR:-/tmp}/nflow-demo-out-XXXXXX")
trap 'rm -f "$out"' EXIT
fail() { echo "FAIL: $*" >&2; cat "$out" >&2; exit 1; }

NFLOW_DEMO_DOCS=2000 timeout 300 "$NFLOW_SOURCE_ROOT/tools/demo.sh" "$NFLOW_BUILD_ROOT" >"$out" 2>&1 \
  || fail "demo.sh failed"
grep -Eq '^ready gateway=tcp://' "$out" || fail "no ready line"
grep -Eq '^indexed [0-9]{3,} documents$' "$out" || fail "nothing indexed"
[ "$(grep -c '^query 0: ' "$out")" -eq 4 ] || fail "expected 4 searches"
[ "$(grep -Ec '^ +[123]\. fortunes/[a-z-]+/[0-9]+ ' "$out")" -eq 12 ] || fail "expected 3 fortunes per search"
grep -Eq '^ +1\. fortunes/computers/' "$out" || fail "no computers fortune for the computers query"
grep -Eq '^indexer/1 +up ' "$out" || fail "no status"
grep -q 'flow stopped cleanly' "$out" || fail "flow did not stop cleanly"
echo "flow_demo: ok"
