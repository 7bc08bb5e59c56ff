package clean

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"io"
	"slices"
)

// region is a byte range [Off, Off+Len) of a device.
type region struct{ Off, Len int64 }

// extent is a partition's byte range on its disk.
type extent struct{ Start, End int64 } // End exclusive

// wipeEdge is how much is zeroed at each end of a disk or partition: it covers the partition
// tables, every md superblock version (0.90 and 1.0 sit in the last 128 KiB, 1.1 and 1.2 in
// the first 8 KiB), LVM and LUKS headers, ZFS labels and every common filesystem's primary
// superblock.
const wipeEdge = 1 << 20

// btrfsMirrors are btrfs's superblock copies beyond the first MiB.
var btrfsMirrors = []int64{64 << 20, 256 << 30}

// maxPartitions bounds the partitions read from a table on disk.
const maxPartitions = 256

// readAt reads len(b) bytes at off, zero-filling what lies past the end.
func readAt(r io.ReaderAt, b []byte, off int64) []byte {
	clear(b)
	if off >= 0 {
		_, _ = r.ReadAt(b, off)
	}
	return b
}

// partitions reads the GPT (primary, else backup) or MBR of a disk of size bytes with the given
// logical sector size, and returns the partitions' extents clipped to the disk and the
// table's name ("gpt", "dos" or "").
func partitions(r io.ReaderAt, size int64, sector int64) ([]extent, string) {
	if sector <= 0 {
		sector = 512
	}
	for _, lba := range []int64{1, size/sector - 1} {
		if ex, ok := readGPT(r, size, sector, lba); ok {
			return ex, "gpt"
		}
	}
	mbr := readAt(r, make([]byte, 512), 0)
	if mbr[510] != 0x55 || mbr[511] != 0xAA {
		return nil, ""
	}
	var out []extent
	valid := false
	for i := range 4 {
		e := mbr[446+16*i : 446+16*(i+1)]
		if e[0] != 0 && e[0] != 0x80 {
			return nil, "" // not a partition table (a FAT boot sector, say)
		}
		typ := e[4]
		start := int64(binary.LittleEndian.Uint32(e[8:])) * sector
		n := int64(binary.LittleEndian.Uint32(e[12:])) * sector
		if typ == 0 || n == 0 {
			continue
		}
		valid = true
		if typ == 0xEE { // protective MBR of a GPT whose headers are both gone
			continue
		}
		if ex, ok := clip(start, start+n, size); ok {
			out = append(out, ex)
		}
	}
	if !valid {
		return nil, ""
	}
	return out, "dos"
}

// readGPT reads the GPT header at lba and its partition entries.
func readGPT(r io.ReaderAt, size, sector, lba int64) ([]extent, bool) {
	if lba < 1 || lba*sector >= size {
		return nil, false
	}
	h := readAt(r, make([]byte, 92), lba*sector)
	if !bytes.Equal(h[:8], []byte("EFI PART")) {
		return nil, false
	}
	entriesLBA := int64(binary.LittleEndian.Uint64(h[72:]))
	n := int64(binary.LittleEndian.Uint32(h[80:]))
	esz := int64(binary.LittleEndian.Uint32(h[84:]))
	if esz < 128 || esz > 4096 || esz%8 != 0 || n > 4096 || entriesLBA < 0 || entriesLBA > size/sector {
		return nil, false
	}
	var out []extent
	e := make([]byte, esz)
	for i := range n {
		readAt(r, e, entriesLBA*sector+i*esz)
		if allZero(e[:16]) {
			continue
		}
		first := int64(binary.LittleEndian.Uint64(e[32:]))
		last := int64(binary.LittleEndian.Uint64(e[40:]))
		if first < 0 || last < first || first > size/sector {
			continue
		}
		if ex, ok := clip(first*sector, (last+1)*sector, size); ok {
			out = append(out, ex)
		}
		if len(out) == maxPartitions {
			break
		}
	}
	return out, true
}

func clip(start, end, size int64) (extent, bool) {
	if start < 0 || start >= size || end <= start {
		return extent{}, false
	}
	return extent{start, min(end, size)}, true
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// signatures names the known signatures found in the device range [start, end).
func signatures(r io.ReaderAt, start, end int64) []string {
	size := end - start
	at := func(off int64, n int) []byte {
		if off < 0 || off+int64(n) > size {
			return make([]byte, n)
		}
		return readAt(r, make([]byte, n), start+off)
	}
	var out []string
	add := func(name string, ok bool) {
		if ok && !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	for _, s := range []int64{512, 4096} {
		add("gpt", bytes.Equal(at(s, 8), []byte("EFI PART")))
	}
	if size >= 512 {
		add("gpt", bytes.Equal(at(size-512, 8), []byte("EFI PART")))
	}
	b0 := at(0, 512)
	if b0[510] == 0x55 && b0[511] == 0xAA {
		fat := bytes.Equal(b0[82:85], []byte("FAT")) || bytes.Equal(b0[54:57], []byte("FAT"))
		add("vfat", fat)
		add("PMBR", !fat && b0[446+4] == 0xEE)
		add("dos", !fat && b0[446+4] != 0xEE)
	}
	add("ext4", binary.LittleEndian.Uint16(at(1024+56, 2)) == 0xEF53)
	add("xfs", bytes.Equal(b0[:4], []byte("XFSB")))
	add("luks", bytes.Equal(b0[:6], []byte("LUKS\xba\xbe")))
	add("LVM2_member", bytes.Equal(at(512, 8), []byte("LABELONE")))
	add("swap", bytes.Equal(at(4096-10, 10), []byte("SWAPSPACE2")))
	add("iso9660", bytes.Equal(at(32769, 5), []byte("CD001")))
	for _, off := range append([]int64{64 << 10}, btrfsMirrors...) {
		add("btrfs", bytes.Equal(at(off+64, 8), []byte("_BHRfS_M")))
	}
	for _, off := range mdSuperblocks(size) {
		add("linux_raid_member", binary.LittleEndian.Uint32(at(off, 4)) == 0xa92b4efc)
	}
	return out
}

// mdSuperblocks are the offsets of md superblocks 1.1, 1.2, 1.0 and 0.90 in a device of size
// bytes.
func mdSuperblocks(size int64) []int64 {
	out := []int64{0, 4096}
	if size >= 8192 {
		out = append(out, ((size>>9)-16)&^7<<9)
	}
	if size >= 128<<10 {
		out = append(out, (size&^(64<<10-1))-64<<10)
	}
	return out
}

// regions lists what erase_devices_metadata zeroes on a device of size bytes with partitions
// parts: wipeEdge at both ends of the device and of each partition, and the btrfs mirrors;
// merged and sorted.
func regions(size int64, parts []extent) []region {
	var rs []region
	edges := func(start, end int64) {
		n := min(int64(wipeEdge), end-start)
		rs = append(rs, region{start, n}, region{end - n, n})
		for _, m := range btrfsMirrors {
			if start+m+4096 <= end {
				rs = append(rs, region{start + m, 4096})
			}
		}
	}
	edges(0, size)
	for _, p := range parts {
		edges(p.Start, p.End)
	}
	slices.SortFunc(rs, func(a, b region) int { return cmp.Compare(a.Off, b.Off) })
	var out []region
	for _, r := range rs {
		if r.Len <= 0 {
			continue
		}
		if n := len(out); n > 0 && r.Off <= out[n-1].Off+out[n-1].Len {
			out[n-1].Len = max(out[n-1].Off+out[n-1].Len, r.Off+r.Len) - out[n-1].Off
			continue
		}
		out = append(out, r)
	}
	return out
}
