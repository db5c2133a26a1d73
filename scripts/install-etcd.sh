#!/usr/bin/env bash
# Installs etcd (server + etcdctl) from Debian's packages if it is missing, for `pnpm bench:cluster`.
#
# Why a policy-rc.d guard: Debian's etcd-server package starts a system etcd on 127.0.0.1:2379 from its postinst.
# The benchmark starts its own members on other ports and must not leave a system service behind, so while the
# package installs we tell invoke-rc.d / deb-systemd-invoke "do not start services" (exit 101). An existing
# policy-rc.d is left untouched; one we create is removed again.
set -euo pipefail

if command -v etcd >/dev/null 2>&1 && command -v etcdctl >/dev/null 2>&1; then
  echo "[install-etcd] already installed: $(etcd --version 2>/dev/null | head -n1)"
  exit 0
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    echo "[install-etcd] etcd is missing and this user is not root (and there is no sudo)." >&2
    echo "[install-etcd] install it by hand: apt-get install -y etcd-server etcd-client" >&2
    exit 1
  fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "[install-etcd] no apt-get here; install etcd 3.4+ by hand and put etcd and etcdctl on PATH." >&2
  exit 1
fi

POLICY=/usr/sbin/policy-rc.d
created_policy=0
cleanup() {
  if [ "$created_policy" -eq 1 ]; then "${SUDO[@]}" rm -f "$POLICY"; fi
}
trap cleanup EXIT
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\n# temporary: written by raft-toolkit scripts/install-etcd.sh\nexit 101\n' | "${SUDO[@]}" tee "$POLICY" >/dev/null
  "${SUDO[@]}" chmod 755 "$POLICY"
  created_policy=1
fi

# Only refresh the package lists when apt does not know the package yet (a fresh container has empty lists).
if ! apt-cache show etcd-server >/dev/null 2>&1; then
  echo "[install-etcd] apt-get update"
  "${SUDO[@]}" apt-get update -qq
fi
echo "[install-etcd] apt-get install -y etcd-server etcd-client"
DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends etcd-server etcd-client >/dev/null

echo "[install-etcd] installed: $(etcd --version | head -n1)"
