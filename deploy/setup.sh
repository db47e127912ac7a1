#!/usr/bin/env bash
# Installs what Shoal needs on a fresh Debian 12 machine (run as root) and builds it.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=(runc crun nftables busybox-static docker-registry iproute2 curl tcpdump util-linux)
missing=()
for p in "${need_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}"
fi
# docker-registry's package starts a system service on :5000; the lab runs its own instances.
systemctl disable --now docker-registry >/dev/null 2>&1 || true

echo "setup: building shoal"
cargo build --workspace --all-targets
