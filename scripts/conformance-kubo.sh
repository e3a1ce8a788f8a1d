#!/usr/bin/env bash
# Builds Kubo (the reference IPFS node) for mint/pinning's conformance test
# into the shared tools dir. Takes about 5 min of CPU, so it runs only under
# `make conformance`, not `make test`. Idempotent.
# `go install` refuses kubo (its go.mod has replace directives), so build from
# the downloaded module source.
set -euo pipefail

VERSION=v0.42.0
TOOLS="${MEDIMINT_TOOLS:-$HOME/.cache/medimint/tools}"
BIN="$TOOLS/ipfs"
STAMP="$TOOLS/.kubo-$VERSION"

if [[ -x "$BIN" && -f "$STAMP" ]]; then
	exit 0
fi
mkdir -p "$TOOLS"
echo "building kubo $VERSION into $TOOLS (about 5 min)" >&2
cd "$TOOLS"
export GOFLAGS=
DIR="$(go mod download -json "github.com/ipfs/kubo@$VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
if [[ -z "$DIR" ]]; then
	echo "conformance-kubo.sh: could not locate kubo $VERSION module source" >&2
	exit 1
fi
(cd "$DIR" && go build -o "$BIN" ./cmd/ipfs)
touch "$STAMP"
