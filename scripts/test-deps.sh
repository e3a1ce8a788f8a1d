#!/usr/bin/env bash
# test-deps.sh — install what the test suite needs, idempotently: each step
# checks first and installs only what is missing; apt-get update runs only
# when something must be installed. Logs go to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "test-deps: $*" >&2; }

APT_UPDATED=
# apt_install PKG...: install Debian packages, updating the lists first once.
apt_install() {
	[ "$(id -u)" -eq 0 ] || { log "error: need root to apt-get install $*"; exit 1; }
	if [ -z "$APT_UPDATED" ]; then
		log "apt-get update"
		apt-get update >&2
		APT_UPDATED=1
	fi
	log "apt-get install $*"
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >&2
}

# dcmtk: DIMSE peers and the codec's oracle (dcmdump, storescu, ...).
if ! command -v dcmdump >/dev/null 2>&1 || ! command -v storescu >/dev/null 2>&1; then
	apt_install dcmtk
fi

# PostgreSQL: the machine's, or a project-local cluster.
scripts/ensure-postgres.sh >/dev/null

# More tools: each engineer's scripts/tools-<name>.sh installs its own
# (Orthanc, versitygw, Kubo, Chromium, ...), idempotently.
for f in scripts/tools-*.sh; do
	[ -e "$f" ] || continue
	log "running $f"
	bash "$f"
done

log "ok"
