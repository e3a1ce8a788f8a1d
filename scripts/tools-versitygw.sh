#!/usr/bin/env bash
# Builds versitygw (a real S3 server, posix backend) for mint/blobstore's S3
# tests into the shared tools dir. Idempotent: a no-op when the pinned
# version is already there.
set -euo pipefail

VERSION=v1.8.0
TOOLS="${MEDIMINT_TOOLS:-$HOME/.cache/medimint/tools}"
BIN="$TOOLS/versitygw"
STAMP="$TOOLS/.versitygw-$VERSION"

if [[ -x "$BIN" && -f "$STAMP" ]]; then
	exit 0
fi
mkdir -p "$TOOLS"
echo "building versitygw $VERSION into $TOOLS (about 1.5 min)" >&2
# GOFLAGS=-mod=mod: go install pkg@version ignores the caller's module anyway,
# but keep the repo's go.mod untouched by running outside it.
(cd "$TOOLS" && GOBIN="$TOOLS" GOFLAGS= go install "github.com/versity/versitygw/cmd/versitygw@$VERSION")
touch "$STAMP"
