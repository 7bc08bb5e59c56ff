#!/bin/sh
# Writes the block-device part of a sysfs tree as a q35 QEMU machine shows it (see
# testing-peers §6.4) under DEST: virtio-blk with a serial, two scsi-hd on virtio-scsi (NAA and
# 32-digit NAA WWNs, one rotational), an NVMe namespace, a USB stick, a read-only AHCI disk, an
# md RAID1, and what must be left out (loop, zram, sr, dm, empty). Used to make testdata/qemu;
# trees captured from a real VM (agent/inspect/testdata/capture.sh) have the same shape.
set -eu
D=${1:?usage: make-disks.sh DEST}
S=$D/sys
mkdir -p "$S/block"

w() { mkdir -p "$(dirname "$1")"; printf '%s\n' "$2" >"$1"; }
# disk KNAME BLOCKDIR SECTORS ROTATIONAL [REMOVABLE RO]: the block device's directory under
# /sys/devices, its attributes, the /sys/block link and the device link to its parent device.
disk() {
	b=$S/devices/$2
	mkdir -p "$b/queue"
	w "$b/size" "$3"; w "$b/queue/rotational" "$4"; w "$b/removable" "${5:-0}"; w "$b/ro" "${6:-0}"
	w "$b/queue/logical_block_size" 512; w "$b/queue/physical_block_size" "${PHYS:-512}"
	ln -sfn "../devices/$2" "$S/block/$1"
	case $2 in
	virtual/*) ;;
	*/nvme/*) ln -sfn ../../nvme0 "$b/device" ;;
	*) ln -sfn ../../../"$(basename "$(dirname "$(dirname "$2")")")" "$b/device" ;;
	esac
}

# virtio-blk: serial on the disk, no model; the virtio device's vendor is the PCI vendor ID.
disk vda pci0000:00/0000:00:02.0/virtio1/block/vda 41943040 1
w "$S/devices/pci0000:00/0000:00:02.0/virtio1/vendor" 0x1af4
w "$S/devices/pci0000:00/0000:00:02.0/virtio1/device" 0x0002
w "$S/block/vda/serial" VDA-SERIAL-0
mkdir -p "$S/devices/pci0000:00/0000:00:02.0/virtio1/block/vda/vda1"
w "$S/devices/pci0000:00/0000:00:02.0/virtio1/block/vda/vda1/partition" 1

# scsi-hd on virtio-scsi: serial only in VPD page 0x80, wwid from VPD page 0x83.
H=pci0000:00/0000:00:03.0/virtio2/host0
disk sda $H/target0:0:0/0:0:0:0/block/sda 20971520 0
w "$S/devices/$H/target0:0:0/0:0:0:0/vendor" "ACME    "
w "$S/devices/$H/target0:0:0/0:0:0:0/model" "SSD-X           "
w "$S/devices/$H/target0:0:0/0:0:0:0/wwid" naa.5000c500a1b2c3d4
printf '\000\200\000\015SCSI-SERIAL-0' >"$S/devices/$H/target0:0:0/0:0:0:0/vpd_pg80"
PHYS=4096 disk sdb $H/target0:0:1/0:0:1:0/block/sdb 4194304 1
w "$S/devices/$H/target0:0:1/0:0:1:0/vendor" "QEMU    "
w "$S/devices/$H/target0:0:1/0:0:1:0/model" "QEMU HARDDISK   "
w "$S/devices/$H/target0:0:1/0:0:1:0/wwid" naa.600a0b800012345600000000deadbeef
printf '\000\200\000\016SCSI-SERIAL-1 ' >"$S/devices/$H/target0:0:1/0:0:1:0/vpd_pg80"

# NVMe: model and serial on the controller, wwid on the namespace (QEMU's bogus-NID form).
disk nvme0n1 pci0000:00/0000:00:04.0/nvme/nvme0/nvme0n1 33554432 0
w "$S/devices/pci0000:00/0000:00:04.0/nvme/nvme0/model" "QEMU NVMe Ctrl                          "
w "$S/devices/pci0000:00/0000:00:04.0/nvme/nvme0/serial" "NVME-SERIAL-0       "
w "$S/devices/pci0000:00/0000:00:04.0/nvme/nvme0/nvme0n1/wwid" nvme.1b36-4e564d452d53455249414c2d30-51454d55204e564d65204374726c-00000001
w "$S/devices/pci0000:00/0000:00:04.0/nvme/nvme0/nvme0n1/nsid" 1

# USB stick (usb-storage, SCSI host 2 under its interface), removable.
U=pci0000:00/0000:00:1d.0/usb2/2-1/2-1:1.0/host2
disk sdc $U/target2:0:0/2:0:0:0/block/sdc 16777216 1 1
w "$S/devices/$U/target2:0:0/2:0:0:0/vendor" "Kingston"
w "$S/devices/$U/target2:0:0/2:0:0:0/model" "DataTraveler 3.0"

# AHCI disk, read-only, 4 GiB.
A=pci0000:00/0000:00:1f.2/ata1/host3
disk sdd $A/target3:0:0/3:0:0:0/block/sdd 8388608 1 0 1
w "$S/devices/$A/target3:0:0/3:0:0:0/vendor" "ATA     "
w "$S/devices/$A/target3:0:0/3:0:0:0/model" "QEMU HARDDISK   "
w "$S/devices/$A/target3:0:0/3:0:0:0/wwid" "t10.ATA     QEMU HARDDISK                           QM00001"
printf '\000\200\000\024QM00001             ' >"$S/devices/$A/target3:0:0/3:0:0:0/vpd_pg80"
mkdir -p "$S/class/ata_port/ata1"; w "$S/class/ata_port/ata1/port_no" 1

# md RAID1, 12 GiB, and md1 inactive (size 0).
disk md0 virtual/block/md0 25165824 0
w "$S/devices/virtual/block/md0/md/level" raid1
disk md1 virtual/block/md1 0 0
w "$S/devices/virtual/block/md1/md/level" raid0

# Left out: loop, zram, optical, device-mapper.
disk loop0 virtual/block/loop0 2097152 0
disk zram0 virtual/block/zram0 1048576 0
disk dm-0 virtual/block/dm-0 8388608 0
disk sr0 pci0000:00/0000:00:1f.2/ata2/host4/target4:0:0/4:0:0:0/block/sr0 2097152 1 1 1
