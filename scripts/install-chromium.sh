#!/usr/bin/env bash
# Installs Debian's chromium for the dashboard's end-to-end tests (apps/dashboard).
# Why Debian's package: machines reach only the npm registry and Debian's archive, so playwright's own browser
# download cannot work; playwright-core drives this system build through executablePath=/usr/bin/chromium.
# Idempotent: does nothing when /usr/bin/chromium already exists.
set -euo pipefail

present() {
  if [ -x /usr/bin/chromium ]; then
    echo "[install-chromium] /usr/bin/chromium already present: $(/usr/bin/chromium --version 2>/dev/null || echo unknown version)"
    exit 0
  fi
}
present

# Two callers at once (parallel test files) would collide on apt's lock: serialize, then check again.
if command -v flock >/dev/null 2>&1; then
  exec 9>"${TMPDIR:-/tmp}/raft-install-chromium.lock"
  flock 9
  present
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    echo "[install-chromium] need root (or sudo) to apt-get install chromium" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
echo "[install-chromium] apt-get update"
$SUDO apt-get update -q
echo "[install-chromium] apt-get install -y chromium"
$SUDO apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core
/usr/bin/chromium --version || true
