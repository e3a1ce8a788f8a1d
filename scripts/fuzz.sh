#!/usr/bin/env bash
# fuzz.sh [PKG...] — run every Fuzz target in the given packages (default
# ./...) for $FUZZTIME each (default 30s), one after another: go test
# accepts only one -fuzz target per run.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZTIME="${FUZZTIME:-30s}"
[ $# -gt 0 ] || set -- ./...

found=0
# go test -list prints each package's matching tests, then "ok  <pkg> ...".
while read -r pkg; do
	targets=$(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true)
	for t in $targets; do
		found=1
		echo "fuzz: $pkg $t for $FUZZTIME" >&2
		go test -run='^$' -fuzz="^${t}\$" -fuzztime="$FUZZTIME" "$pkg"
	done
done < <(go list "$@")

[ "$found" -eq 1 ] || echo "fuzz: no Fuzz targets found" >&2
