#!/usr/bin/env bash
# Install the Debian packages the project builds against. Idempotent; needs root (or sudo).
set -euo pipefail
# libc6-dev-arm64-cross: aarch64 libc headers for the C kernels' cross syntax check (scripts/check-c-portability.sh).
PKGS=(libopenblas-dev libsystemd-dev libyaml-dev libsqlite3-dev pkg-config groff-base systemd curl libc6-dev-arm64-cross)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
