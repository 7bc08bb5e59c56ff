#!/usr/bin/env bash
# Installs mdadm, which agent/raid's loop-device tests drive (FERRUM_LOOPDEV=1; the kernel must
# have md: without /proc/mdstat those tests skip and say so).
# Idempotent; uses sudo when not root.
set -euo pipefail
pkgs=(mdadm)
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
