#!/usr/bin/env bash
# Prepares the VM tests (FERRUM_VMTEST=1): installs QEMU, OVMF, genisoimage (config drives) and
# the build's tools (kmod for depmod, binutils for readelf), then builds the ramdisk into
# initramfs/out (`make initramfs`; the kernel and Debian packages are cached there).
# Idempotent; uses sudo when not root.
set -euo pipefail
pkgs=(qemu-system-x86 ovmf kmod binutils genisoimage)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO="sudo"
	echo "test-setup: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	install() { $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
	install || { $SUDO apt-get update -qq && install; }
fi
bash "$(dirname "$0")/../build.sh"
