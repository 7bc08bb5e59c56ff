package raid

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ferrumhq/ferrum/agent/internal/gpt"
	"github.com/ferrumhq/ferrum/shared/proto"
)

// Space left before the RAID partitions for a bootloader, as ironic-python-agent leaves it:
// an EFI system partition slot (UEFI) or a bios_grub partition (BIOS on GPT).
const (
	alignBytes   = 1 << 20
	espSlotBytes = 550 << 20
	biosGrubSize = 8 << 20
)

// PartName is the device of partition n of disk: sda → sda2, nvme0n1 → nvme0n1p2.
func PartName(disk string, n int) string {
	if c := disk[len(disk)-1]; c >= '0' && c <= '9' {
		return disk + "p" + strconv.Itoa(n)
	}
	return disk + strconv.Itoa(n)
}

// layout returns the GPT partitions of a member disk of size bytes and the partition numbers
// holding each logical disk.
func layout(size, sector int64, lds []proto.LogicalDisk, bootMode string) ([]gpt.Partition, []int, error) {
	t, err := gpt.New(size, sector)
	if err != nil {
		return nil, nil, err
	}
	align := uint64(alignBytes / sector)
	lastAligned := (t.LastUsable+1)/align*align - 1
	var parts []gpt.Partition
	start := align
	if bootMode == proto.BootModeBIOS {
		n := uint64(biosGrubSize / sector)
		parts = append(parts, gpt.Partition{Number: 1, First: start, Last: start + n - 1, Type: gpt.TypeBIOSBoot, Name: "bios_grub"})
		start += n
	} else {
		start += uint64(espSlotBytes / sector)
	}
	var nums []int
	for i, ld := range lds {
		end := lastAligned
		if !ld.SizeGB.Max {
			end = start + uint64(ld.SizeGB.GB)<<30/uint64(sector) - 1
		}
		if end > lastAligned || end < start || lastAligned < start {
			return nil, nil, fmt.Errorf("logical disk %d (%s GiB) does not fit: the disk has %d bytes", i, ld.SizeGB, size)
		}
		idx := len(parts) + 1
		parts = append(parts, gpt.Partition{Number: idx, First: start, Last: end, Type: gpt.TypeLinuxRAID, Name: "raid-" + strconv.Itoa(i)})
		nums = append(nums, idx)
		start = end + 1
	}
	return parts, nums, nil
}

// partition writes the member disk's GPT and returns the partition device of each logical
// disk. A disk that already has a partition table is refused.
func (r *RAID) partition(ctx context.Context, disk string, lds []proto.LogicalDisk, bootMode string) ([]string, error) {
	st, err := os.Stat(disk)
	if err != nil {
		return nil, fmt.Errorf("create_raid: %w", err)
	}
	block := st.Mode()&os.ModeDevice != 0
	flags := os.O_RDWR | unix.O_CLOEXEC
	if block {
		flags |= unix.O_EXCL
	}
	f, err := os.OpenFile(disk, flags, 0)
	if errors.Is(err, unix.EBUSY) {
		return nil, fmt.Errorf("create_raid: %s is in use (mounted, or a member of an array)", disk)
	}
	if err != nil {
		return nil, fmt.Errorf("create_raid: %w", err)
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, fmt.Errorf("create_raid: size of %s: %w", disk, err)
	}
	sector := int64(512)
	if block {
		if n, err := unix.IoctlGetInt(int(f.Fd()), unix.BLKSSZGET); err == nil && n >= 512 {
			sector = int64(n)
		}
	}
	head := make([]byte, 2*sector)
	if _, err := f.ReadAt(head, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("create_raid: read %s: %w", disk, err)
	}
	if (head[510] == 0x55 && head[511] == 0xAA) || bytes.HasPrefix(head[sector:], []byte("EFI PART")) {
		return nil, fmt.Errorf("create_raid: %s has a partition table; software RAID members must be empty (delete_raid or erase_devices_metadata first)", disk)
	}
	parts, nums, err := layout(size, sector, lds, bootMode)
	if err != nil {
		return nil, fmt.Errorf("create_raid: %s: %w", disk, err)
	}
	table, err := gpt.New(size, sector)
	if err != nil {
		return nil, fmt.Errorf("create_raid: %s: %w", disk, err)
	}
	for _, p := range parts {
		if _, err := table.Add(p); err != nil {
			return nil, fmt.Errorf("create_raid: %s: %w", disk, err)
		}
	}
	if err := table.Write(f, nil, size); err != nil {
		return nil, fmt.Errorf("create_raid: partition %s: %w", disk, err)
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("create_raid: partition %s: %w", disk, err)
	}
	var out []string
	for _, n := range nums {
		out = append(out, PartName(disk, n))
	}
	if !block {
		return out, nil
	}
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), uintptr(unix.BLKRRPART), 0); errno != 0 {
		return nil, fmt.Errorf("create_raid: re-read partition table of %s: %w", disk, errno)
	}
	deadline := time.Now().Add(r.cfg.PartitionWait)
	for _, p := range out {
		for {
			if _, err := os.Stat(p); err == nil {
				break
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("create_raid: %s did not appear after partitioning %s", p, disk)
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return out, nil
}
