#!/bin/sh
# Writes the inspection fixture trees (run from this directory; the SMBIOS tables are written
# by `go test -run TestWriteSMBIOSFixture -write-smbios`):
#   qemu-q35-ovmf/  q35 + OVMF as in testing-peers §6.4–6.6: the disks of blockdev's fixture,
#                   two virtio NICs, 2 CPUs in one socket, 2 GiB, BOOTIF, efivarfs.
#   arm64-bios/     an aarch64 machine without SMBIOS tables (only /sys/class/dmi/id), booted
#                   without UEFI, one e1000e NIC without carrier, one virtio disk.
set -eu
cd "$(dirname "$0")"
w() { mkdir -p "$(dirname "$1")"; printf '%s\n' "$2" >"$1"; }
# nic ROOT NAME DEVDIR DRIVER_BUS DRIVER MAC CARRIER SPEED VENDOR DEVICE
nic() {
	d=$1/sys/devices/$3
	mkdir -p "$d/net/$2" "$1/sys/class/net" "$1/sys/bus/$4/drivers/$5"
	ln -sfn "../../devices/$3/net/$2" "$1/sys/class/net/$2"
	ln -sfn ../.. "$d/net/$2/device"
	rel=$(echo "$3" | sed 's#[^/]*#..#g')
	ln -sfn "../$rel/bus/$4/drivers/$5" "$d/driver"
	w "$d/net/$2/address" "$6"; w "$d/net/$2/type" 1; w "$d/net/$2/carrier" "$7"; w "$d/net/$2/speed" "$8"
	w "$d/vendor" "$9"; w "$d/device" "${10}"
}

R=qemu-q35-ovmf
rm -rf "$R/proc" "$R/sys/block" "$R/sys/devices" "$R/sys/class" "$R/sys/bus" "$R/sys/firmware/efi"
sh ../../internal/blockdev/testdata/make-disks.sh "$R"
nic $R eth0 pci0000:00/0000:00:05.0/virtio3 virtio virtio_net 52:54:00:12:34:56 1 -1 0x1af4 0x0001
nic $R eth1 pci0000:00/0000:00:06.0/virtio4 virtio virtio_net 52:54:00:12:34:57 0 -1 0x1af4 0x0001
mkdir -p $R/sys/devices/virtual/net/lo; ln -sfn ../../devices/virtual/net/lo $R/sys/class/net/lo
w $R/sys/devices/virtual/net/lo/address 00:00:00:00:00:00; w $R/sys/devices/virtual/net/lo/type 772
mkdir -p $R/sys/devices/virtual/net/br0; ln -sfn ../../devices/virtual/net/br0 $R/sys/class/net/br0
w $R/sys/devices/virtual/net/br0/address 52:54:00:12:34:56; w $R/sys/devices/virtual/net/br0/type 1
for c in 0 1; do w $R/sys/devices/system/cpu/cpu$c/topology/physical_package_id 0; done
mkdir -p $R/sys/firmware/efi/efivars
for f in sys_vendor:Acme product_name:BM-1000 product_serial:SYS-SERIAL-0001 \
	product_uuid:6c9e1f32-3b52-4b0e-9c1d-1f2e3d4c5b6a bios_vendor:BMTest bios_version:1.2.3 bios_date:02/02/2022; do
	w "$R/sys/class/dmi/id/${f%%:*}" "${f#*:}"
done
w $R/proc/sys/kernel/hostname ramdisk-0
w $R/proc/sys/kernel/arch x86_64
w $R/proc/cmdline "console=ttyS0 BOOTIF=01-52-54-00-12-34-56 ferrum.controller=10.0.2.2:6386"
cat >$R/proc/meminfo <<'M'
MemTotal:        2027412 kB
MemFree:         1848228 kB
MemAvailable:    1832616 kB
M
for c in 0 1; do cat >>$R/proc/cpuinfo <<C
processor	: $c
vendor_id	: GenuineIntel
cpu family	: 6
model		: 85
model name	: Intel Xeon Processor (Cascadelake)
stepping	: 6
cpu MHz		: 2394.374
physical id	: 0
siblings	: 2
core id		: $c
cpu cores	: 2
flags		: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ss syscall nx pdpe1gb rdtscp lm constant_tsc rep_good nopl xtopology cpuid pni pclmulqdq vmx ssse3 fma cx16 sse4_1 sse4_2 x2apic avx hypervisor
bogomips	: 4788.74

C
done

R=arm64-bios
rm -rf "$R"
mkdir -p $R/sys/block
b=$R/sys/devices/platform/4010000000.pcie/pci0000:00/0000:00:01.0/virtio0/block/vda
w $b/size 16777216; w $b/queue/rotational 1; w $b/removable 0; w $b/ro 0; w $b/serial ARM-VDA
ln -sfn ../devices/platform/4010000000.pcie/pci0000:00/0000:00:01.0/virtio0/block/vda $R/sys/block/vda
nic $R enp0s2 platform/4010000000.pcie/pci0000:00/0000:00:02.0 pci e1000e 52:54:00:AB:CD:EF 0 -1 0x8086 0x10d3
for f in sys_vendor:QEMU "product_name:QEMU KVM Virtual Machine" product_uuid:00000000-0000-0000-0000-000000000000 \
	"bios_vendor:EFI Development Kit II / OVMF" bios_version:0.0.0 bios_date:02/06/2015 "product_serial:Not Specified"; do
	w "$R/sys/class/dmi/id/${f%%:*}" "${f#*:}"
done
w $R/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq 2000000
w $R/proc/sys/kernel/hostname arm-0
w $R/proc/cmdline "console=ttyAMA0"
w $R/proc/meminfo "MemTotal:        4008228 kB"
cat >$R/proc/cpuinfo <<'C'
processor	: 0
BogoMIPS	: 50.00
Features	: fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid
CPU implementer	: 0x41
CPU architecture: 8
CPU variant	: 0x3
CPU part	: 0xd0c
CPU revision	: 1

C
