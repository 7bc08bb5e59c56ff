#!/usr/bin/env bash
# Installs the Debian packages agent/clean's tests check the erasure with: sgdisk (gdisk),
# mkfs.ext4 (e2fsprogs), blkid, wipefs and losetup (util-linux, mount).
# Idempotent; uses sudo when not root.
set -euo pipefail
pkgs=(gdisk e2fsprogs util-linux mount)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "test-setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
install() { $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
install || { $SUDO apt-get update -qq && install; }
