package configdrive

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ferrumhq/ferrum/agent/internal/gpt"
	"github.com/ferrumhq/ferrum/shared/proto"
)

// Placement constants, as ironic-python-agent places a config drive.
const (
	partBytes = proto.MaxConfigDriveBytes // the partition made for it: 64 MiB
	alignment = 1 << 20
	// mbrLimit is the last byte an MBR partition can reach (2 TiB of 512-byte sectors).
	mbrLimit = int64(1<<32) * 512
	// mbrFAT32LBA is the MBR type parted's "mkpart primary fat32" writes.
	mbrFAT32LBA = 0x0C
)

// disk is an open target disk or image file.
type disk struct {
	f      *os.File
	path   string
	block  bool
	size   int64
	sector int64
}

func openDisk(path string) (*disk, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	d := &disk{path: path, sector: 512}
	flags := os.O_RDWR | unix.O_CLOEXEC
	switch {
	case st.Mode()&os.ModeDevice != 0 && st.Mode()&os.ModeCharDevice == 0:
		d.block = true
		flags |= unix.O_EXCL
	case st.Mode().IsRegular():
	default:
		return nil, fmt.Errorf("%s is not a block device or a regular file", path)
	}
	f, err := os.OpenFile(path, flags, 0)
	if errors.Is(err, unix.EBUSY) {
		return nil, fmt.Errorf("%s is in use (mounted, or a member of an array)", path)
	}
	if err != nil {
		return nil, err
	}
	d.f = f
	if d.size, err = f.Seek(0, io.SeekEnd); err != nil {
		f.Close()
		return nil, err
	}
	if d.block {
		if n, err := unix.IoctlGetInt(int(f.Fd()), unix.BLKSSZGET); err == nil && n >= 512 {
			d.sector = int64(n)
		}
	}
	return d, nil
}

// PartName is the device of partition n of disk: sda → sda3, nvme0n1 → nvme0n1p3.
func PartName(disk string, n int) string {
	if c := disk[len(disk)-1]; c >= '0' && c <= '9' {
		return disk + "p" + strconv.Itoa(n)
	}
	return disk + strconv.Itoa(n)
}

// hasLabel reports whether the filesystem at off carries the config-2 label (ISO 9660 volume
// identifier, or a FAT volume label).
func hasLabel(r io.ReaderAt, off int64) bool {
	b := make([]byte, 32768+72)
	if _, err := r.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
		return false
	}
	if string(b[32769:32774]) == "CD001" && strings.TrimRight(string(b[32808:32840]), " \x00") == Label {
		return true
	}
	if b[510] == 0x55 && b[511] == 0xAA {
		for _, o := range []int{43, 71} { // FAT12/16, FAT32 volume label
			if strings.TrimRight(string(b[o:o+11]), " ") == strings.ToUpper(Label) || strings.TrimRight(string(b[o:o+11]), " ") == Label {
				return true
			}
		}
	}
	return false
}

// place finds or creates the config drive partition on d and writes img there.
func place(d *disk, img []byte) (proto.ConfigDriveResult, error) {
	res := proto.ConfigDriveResult{Device: d.path, ISOBytes: int64(len(img))}
	head := make([]byte, 2*d.sector)
	if _, err := d.f.ReadAt(head, 0); err != nil && !errors.Is(err, io.EOF) {
		return res, err
	}
	switch {
	case bytes.HasPrefix(head[d.sector:], []byte("EFI PART")):
		res.PartitionTable = "gpt"
		if err := placeGPT(d, img, &res); err != nil {
			return res, err
		}
	case head[510] == 0x55 && head[511] == 0xAA:
		res.PartitionTable = "dos"
		if err := placeMBR(d, head, img, &res); err != nil {
			return res, err
		}
	default:
		return res, fmt.Errorf("%s has no partition table: a config drive needs a partition, and a whole-disk image without a table leaves nowhere to put it", d.path)
	}
	if res.Size < int64(len(img)) {
		return res, fmt.Errorf("the config-2 partition %s has %d bytes, the image %d", res.Partition, res.Size, len(img))
	}
	if _, err := d.f.WriteAt(img, res.Offset); err != nil {
		return res, fmt.Errorf("write config drive to %s: %w", d.path, err)
	}
	if err := d.f.Sync(); err != nil {
		return res, fmt.Errorf("write config drive to %s: %w", d.path, err)
	}
	return res, nil
}

func placeGPT(d *disk, img []byte, res *proto.ConfigDriveResult) error {
	t, err := gpt.Read(d.f, d.size, d.sector)
	if err != nil {
		return fmt.Errorf("read GPT of %s: %w", d.path, err)
	}
	var lastEnd uint64
	for _, p := range t.Partitions() {
		lastEnd = max(lastEnd, p.Last)
		if hasLabel(d.f, int64(p.First)*d.sector) {
			res.Partition, res.PartitionNumber, res.PartitionUUID = PartName(d.path, p.Number), p.Number, strings.ToLower(p.GUID)
			res.Offset, res.Size, res.Reused = int64(p.First)*d.sector, int64(p.Last-p.First+1)*d.sector, true
			return nil
		}
	}
	// Move the backup GPT to the end of the disk (sgdisk -e): an image smaller than the disk
	// left it in the middle.
	if err := t.Resize(d.size); err != nil {
		return fmt.Errorf("%s: %w", d.path, err)
	}
	last := t.LastUsable
	align := uint64(alignment / d.sector)
	n := uint64(partBytes / d.sector)
	if last+1 < n {
		return fmt.Errorf("%s is too small for a %d MiB config drive partition", d.path, partBytes>>20)
	}
	start := (last + 1 - n) / align * align
	if start <= lastEnd || start < t.FirstUsable {
		return fmt.Errorf("no room for a %d MiB config drive partition at the end of %s: its last partition ends at byte %d of %d",
			partBytes>>20, d.path, (lastEnd+1)*uint64(d.sector), d.size)
	}
	p, err := t.Add(gpt.Partition{Type: gpt.TypeLinuxFilesystem, First: start, Last: last, Name: Label})
	if err != nil {
		return fmt.Errorf("%s: %w", d.path, err)
	}
	if err := t.Write(d.f, d.f, d.size); err != nil {
		return fmt.Errorf("write GPT of %s: %w", d.path, err)
	}
	res.Partition, res.PartitionNumber, res.PartitionUUID = PartName(d.path, p.Number), p.Number, strings.ToLower(p.GUID)
	res.Offset, res.Size = int64(start)*d.sector, int64(last-start+1)*d.sector
	return nil
}

func placeMBR(d *disk, head, img []byte, res *proto.ConfigDriveResult) error {
	free, lastEnd := -1, int64(0)
	for i := range 4 {
		e := head[446+16*i : 446+16*(i+1)]
		typ := e[4]
		start := int64(binary.LittleEndian.Uint32(e[8:])) * d.sector
		n := int64(binary.LittleEndian.Uint32(e[12:])) * d.sector
		if typ == 0 || n == 0 {
			if free < 0 {
				free = i
			}
			continue
		}
		if typ == 0xEE {
			return fmt.Errorf("%s has a protective MBR but no valid GPT", d.path)
		}
		lastEnd = max(lastEnd, start+n)
		if hasLabel(d.f, start) {
			res.Partition, res.PartitionNumber = PartName(d.path, i+1), i+1
			res.Offset, res.Size, res.Reused = start, n, true
			res.PartitionUUID = fmt.Sprintf("%08x-%02d", binary.LittleEndian.Uint32(head[440:]), i+1)
			return nil
		}
	}
	if free < 0 {
		return fmt.Errorf("%s has four primary partitions: no slot for a config drive", d.path)
	}
	end := min(d.size, mbrLimit) / alignment * alignment
	start := end - partBytes
	if start < lastEnd || start < alignment {
		return fmt.Errorf("no room for a %d MiB config drive partition at the end of %s (within the MBR's 2 TiB)", partBytes>>20, d.path)
	}
	e := make([]byte, 16)
	e[1], e[2], e[3] = 0xFE, 0xFF, 0xFF // CHS unused: LBA only
	e[4] = mbrFAT32LBA
	e[5], e[6], e[7] = 0xFE, 0xFF, 0xFF
	binary.LittleEndian.PutUint32(e[8:], uint32(start/d.sector))
	binary.LittleEndian.PutUint32(e[12:], uint32(partBytes/d.sector))
	if _, err := d.f.WriteAt(e, int64(446+16*free)); err != nil {
		return fmt.Errorf("write MBR of %s: %w", d.path, err)
	}
	res.Partition, res.PartitionNumber = PartName(d.path, free+1), free+1
	res.PartitionUUID = fmt.Sprintf("%08x-%02d", binary.LittleEndian.Uint32(head[440:]), free+1)
	res.Offset, res.Size = start, partBytes
	return nil
}

// rereadPartitions asks the kernel to re-read d's partition table (BLKRRPART), so that the
// new partition's device appears; the config drive is written through the disk either way.
func (d *disk) rereadPartitions() error {
	if !d.block {
		return nil
	}
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, d.f.Fd(), uintptr(unix.BLKRRPART), 0); errno != 0 {
		return errno
	}
	return nil
}
