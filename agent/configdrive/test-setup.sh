#!/usr/bin/env bash
# Installs what agent/configdrive's tests read the config drive back with: isoinfo
# (genisoimage), sgdisk -v (gdisk) and blkid (util-linux).
# Idempotent; uses sudo when not root.
set -euo pipefail
pkgs=(genisoimage gdisk util-linux)
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
