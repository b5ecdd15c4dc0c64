#!/usr/bin/env bash
# tools/demo.sh against this build: it indexes the whole fortunes corpus
# (and lists the one fortune it rejects, ascii-art/7, which has no words), prints
# search results from it, the status, and stops the flow cleanly.
set -euo pipefail
: "${NFLOW_BUILD_ROOT:?}" "${NFLOW_SOURCE_ROOT:?}"
if [ ! -d /usr/share/games/fortunes ]; then
  exec "$NFLOW_SOURCE_ROOT/tests/skip_or_fail.sh" "no fortunes corpus (apt-get install fortunes)"
fi
out=$(mktemp "${TMPDIR:-/tmp}/nflow-demo-out-XXXXXX")
trap 'rm -f "$out"' EXIT
fail() { echo "FAIL: $*" >&2; cat "$out" >&2; exit 1; }

timeout 500 "$NFLOW_SOURCE_ROOT/tools/demo.sh" "$NFLOW_BUILD_ROOT" >"$out" 2>&1 \
  || fail "demo.sh failed"
grep -Eq '^ready gateway=tcp://' "$out" || fail "no ready line"
grep -Eq '^indexed [0-9]{3,}, rejected [0-9]+, failed 0$' "$out" || fail "nothing indexed"
grep -Eq "^nflow index: rejected id 'fortunes/ascii-art/7'" "$out" || fail "ascii-art/7 (no words) not listed as rejected"
grep -Eq '^rejected: 1 document' "$out" || fail "the demo does not list what it rejected"
[ "$(grep -c '^query 0: ' "$out")" -eq 5 ] || fail "expected 5 searches"
[ "$(grep -Ec '^ +[123]\. fortunes/[a-z-]+/[0-9]+ ' "$out")" -eq 15 ] || fail "expected 3 fortunes per search"
# the filtered search: 3 fortunes, all from linux or computers, with their field
[ "$(grep -Ec '^ +fields: \{"file":"(linux|computers)"\}$' "$out")" -eq 3 ] \
  || fail "the filtered search did not keep to linux and computers"
[ "$(grep -Ec '^ +fields: ' "$out")" -eq 3 ] || fail "fields printed outside the filtered search"
grep -Eq '^ +1\. fortunes/computers/' "$out" || fail "no computers fortune for the computers query"
grep -Eq '^indexer/1 +up ' "$out" || fail "no status"
grep -q 'flow stopped cleanly' "$out" || fail "flow did not stop cleanly"
echo "flow_demo: ok"
