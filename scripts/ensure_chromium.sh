#!/usr/bin/env bash
# Headless Chromium and its WebDriver for the browser test of the Dagster UI (Debian packages).
# Does nothing when both are installed; otherwise installs them with apt-get (needs root).
set -euo pipefail

if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "ensure_chromium: chromium/chromedriver missing and not root; run: sudo apt-get install -y chromium chromium-driver" >&2
  exit 1
fi
# Other jobs may hold the dpkg lock: wait for it, but not forever.
APT=(apt-get -o DPkg::Lock::Timeout=300 -y -q)
export DEBIAN_FRONTEND=noninteractive
"${APT[@]}" install --no-install-recommends chromium chromium-driver || {
  "${APT[@]}" update && "${APT[@]}" install --no-install-recommends chromium chromium-driver
}
chromium --version
