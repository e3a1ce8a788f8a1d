#!/usr/bin/env bash
# Installs Debian's Chromium for the portal's browser tests (portal/e2e),
# driven by npm playwright-core; Playwright's own browser downloads are not
# reachable here. Idempotent: a no-op when /usr/bin/chromium exists.
set -euo pipefail

if [[ -x /usr/bin/chromium ]]; then
	exit 0
fi
if [[ "$(id -u)" -ne 0 ]]; then
	echo "tools-chromium.sh: need root to apt-get install chromium" >&2
	exit 1
fi
echo "installing chromium" >&2
apt-get update >&2
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium fonts-dejavu-core >&2
