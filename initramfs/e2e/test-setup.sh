#!/usr/bin/env bash
# Prepares the end-to-end lifecycle test (FERRUM_E2E=1, `make e2e`): ipmi_sim and ipmitool (the
# BMC), QEMU with iPXE ROMs (the machine), and the tools that build the bootable test image
# (syslinux, mtools, dosfstools, qemu-img), and the agent ramdisk when initramfs/out has none
# (through initramfs/vmtest/test-setup.sh, which builds it; `make test` runs that first, so the
# ramdisk is built once). Idempotent and quiet; uses sudo when not root.
set -euo pipefail
pkgs=(openipmi ipmitool qemu-system-x86 qemu-utils ipxe-qemu syslinux syslinux-common mtools dosfstools)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO="sudo"
	echo "e2e test-setup: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	install() { $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
	install || { $SUDO apt-get update -qq && install; }
fi
out=${FERRUM_INITRAMFS_DIR:-$(dirname "$0")/../out}
if [ ! -f "$out/initramfs.cpio.gz" ] || [ ! -f "$out/vmlinuz" ] || [ ! -f "$out/kver" ]; then
	bash "$(dirname "$0")/../vmtest/test-setup.sh"
fi
