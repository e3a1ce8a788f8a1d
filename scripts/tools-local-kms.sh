#!/usr/bin/env bash
# Builds local-kms (a KMS emulator speaking the AWS KMS API) for
# mint/envelope's KMS wrapper tests into the shared tools dir. Idempotent.
set -euo pipefail

VERSION=v0.0.0-20260228092603-2a5e92d09ab6
TOOLS="${MEDIMINT_TOOLS:-$HOME/.cache/medimint/tools}"
BIN="$TOOLS/local-kms"
STAMP="$TOOLS/.local-kms-$VERSION"

if [[ -x "$BIN" && -f "$STAMP" ]]; then
	exit 0
fi
mkdir -p "$TOOLS"
echo "building local-kms $VERSION into $TOOLS" >&2
(cd "$TOOLS" && GOBIN="$TOOLS" GOFLAGS= go install "github.com/nsmithuk/local-kms@$VERSION")
touch "$STAMP"
