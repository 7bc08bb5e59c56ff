#!/usr/bin/env bash
# Installs what agent/image's tests and `make bench-image` drive: qemu-img and qemu-io (Debian
# qemu-utils) build and check the qcow2 fixtures; curl is the benchmark's `curl | dd` baseline;
# losetup (mount) makes the loop device of the FERRUM_LOOPDEV test.
# Idempotent; uses sudo when not root.
set -euo pipefail
pkgs=(qemu-utils curl util-linux mount)
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
