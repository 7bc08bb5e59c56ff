#!/bin/sh
# capture.sh DEST [ROOT]: copies what inspection reads from a live machine (ROOT, default /)
# into DEST, keeping sysfs's relative symlinks, so that `ferrum-agent inventory --root DEST`
# and the tests see the machine as it is. Run it inside a VM (as root, to include the SMBIOS
# tables) to capture a fixture; IP addresses and the BMC are not part of a capture.
set -eu
DEST=${1:?usage: capture.sh DEST [ROOT]}
ROOT=${2:-}
mkdir -p "$DEST"

# f PATH: copy a readable file (sysfs sizes are unreliable, so cat it).
f() {
	[ -f "$ROOT$1" ] && [ -r "$ROOT$1" ] || return 0
	mkdir -p "$DEST$(dirname "$1")"
	cat "$ROOT$1" >"$DEST$1" 2>/dev/null || rm -f "$DEST$1"
}
# l PATH: recreate a symlink with the same (relative) target.
l() {
	[ -L "$ROOT$1" ] || return 0
	mkdir -p "$DEST$(dirname "$1")"
	ln -sfn "$(readlink "$ROOT$1")" "$DEST$1"
}
# real PATH: the path a sysfs link resolves to, without ROOT.
real() { p=$(readlink -f "$ROOT$1"); echo "${p#"$ROOT"}"; }

for p in /proc/cpuinfo /proc/meminfo /proc/cmdline /proc/sys/kernel/hostname /proc/sys/kernel/arch \
	/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq; do
	f "$p"
done
for p in "$ROOT"/sys/devices/system/cpu/cpu[0-9]*/topology/physical_package_id; do f "${p#"$ROOT"}"; done
for p in "$ROOT"/sys/firmware/dmi/tables/smbios_entry_point "$ROOT"/sys/firmware/dmi/tables/DMI "$ROOT"/sys/class/dmi/id/*; do
	f "${p#"$ROOT"}"
done
if [ -d "$ROOT/sys/firmware/efi" ]; then mkdir -p "$DEST/sys/firmware/efi/efivars"; fi

for b in "$ROOT"/sys/block/*; do
	[ -e "$b" ] || continue
	b=${b#"$ROOT"}
	l "$b"
	d=$(real "$b")
	for a in size ro removable hidden serial wwid nsid partition md/level queue/rotational \
		queue/logical_block_size queue/physical_block_size; do
		f "$d/$a"
	done
	[ -L "$ROOT$d/device" ] || continue
	l "$d/device"
	dev=$(real "$d/device")
	for a in model vendor serial wwid vpd_pg80; do f "$dev/$a"; done
	# udev-less by-path needs the ATA port numbers and SAS addresses on the way
	for e in $(echo "$dev" | tr / ' '); do
		case $e in
		ata[0-9]*) f "/sys/class/ata_port/$e/port_no" ;;
		end_device-*) f "/sys/class/sas_device/$e/sas_address" ;;
		esac
	done
done
for p in "$ROOT"/dev/disk/by-path/*; do [ -L "$p" ] && l "${p#"$ROOT"}"; done

for n in "$ROOT"/sys/class/net/*; do
	[ -e "$n" ] || continue
	n=${n#"$ROOT"}
	l "$n"
	d=$(real "$n")
	for a in address type carrier speed; do f "$d/$a"; done
	[ -L "$ROOT$d/device" ] || continue
	l "$d/device"
	dev=$(real "$d/device")
	f "$dev/vendor"; f "$dev/device"
	if [ -L "$ROOT$dev/driver" ]; then
		l "$dev/driver"
		mkdir -p "$DEST$(real "$dev/driver")"
	fi
done
true
