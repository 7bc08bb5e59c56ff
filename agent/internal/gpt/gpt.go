// Package gpt reads, edits and writes GUID partition tables: both headers and entry arrays
// with their CRCs, and the protective MBR. A table read from a disk keeps its entry array
// byte for byte, so rewriting it (after adding a partition or moving the backup to a grown
// disk's end, as sgdisk -e does) changes nothing else.
//
// It exists so the agent need not import a GPT library that pulls database/sql/driver in (the
// agent must stay small). agent/raid and agent/configdrive import it; it is internal to agent/.
package gpt

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"unicode/utf16"
)

// Partition type GUIDs.
const (
	TypeLinuxFilesystem = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
	TypeLinuxRAID       = "A19D880F-05FC-4D3B-A006-743F0F84911E"
	TypeBIOSBoot        = "21686148-6449-6E6F-744E-656564454649"
	TypeEFISystem       = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
)

// Limits on what Read accepts.
const (
	maxEntries   = 1024
	maxEntrySize = 4096
	headerSize   = 92
)

// ErrNoTable: neither the primary nor the backup header is valid.
var ErrNoTable = errors.New("no valid GPT")

// Partition is one used entry. Number is its 1-based slot in the entry array.
type Partition struct {
	Number      int
	Type        string // type GUID, upper case
	GUID        string // unique partition GUID, upper case
	First, Last uint64 // LBAs, inclusive
	Attributes  uint64
	Name        string
}

// Table is a GPT of a disk with a given logical sector size.
type Table struct {
	Sector      int64
	DiskGUID    string
	FirstUsable uint64
	LastUsable  uint64
	// RecoveredFromBackup: the primary header was invalid and the backup was read.
	RecoveredFromBackup bool

	entrySize int
	entries   []byte // the whole entry array
}

// New returns an empty table of 128 entries for a disk of size bytes.
func New(size, sector int64) (*Table, error) {
	t := &Table{Sector: sector, DiskGUID: NewGUID(), entrySize: 128, entries: make([]byte, 128*128)}
	t.FirstUsable = 2 + uint64(t.entrySectors())
	if err := t.Resize(size); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *Table) entrySectors() int64 {
	return (int64(len(t.entries)) + t.Sector - 1) / t.Sector
}

// Resize places the backup structures at the end of a disk of size bytes and extends
// LastUsable accordingly (sgdisk -e).
func (t *Table) Resize(size int64) error {
	n := size / t.Sector
	if n < 2*t.entrySectors()+4 {
		return fmt.Errorf("gpt: disk of %d bytes too small", size)
	}
	last := uint64(n - 2 - t.entrySectors())
	for _, p := range t.Partitions() {
		if p.Last > last {
			return fmt.Errorf("gpt: partition %d ends beyond the disk's last usable sector", p.Number)
		}
	}
	t.LastUsable = last
	return nil
}

// Read reads the table of a disk of size bytes: the primary, or the backup at the disk's end
// when the primary is invalid.
func Read(r io.ReaderAt, size, sector int64) (*Table, error) {
	if sector < 512 || sector > 65536 || sector&(sector-1) != 0 {
		return nil, fmt.Errorf("gpt: sector size %d", sector)
	}
	t, perr := readAt(r, size, sector, 1)
	if perr == nil {
		return t, nil
	}
	t, berr := readAt(r, size, sector, size/sector-1)
	if berr != nil {
		return nil, fmt.Errorf("%w: primary: %v; backup: %v", ErrNoTable, perr, berr)
	}
	t.RecoveredFromBackup = true
	return t, nil
}

func readAt(r io.ReaderAt, size, sector, lba int64) (*Table, error) {
	if lba < 1 || (lba+1)*sector > size {
		return nil, errors.New("header outside the disk")
	}
	h := make([]byte, sector)
	if _, err := r.ReadAt(h, lba*sector); err != nil {
		return nil, err
	}
	if string(h[:8]) != "EFI PART" {
		return nil, errors.New("no signature")
	}
	hs := binary.LittleEndian.Uint32(h[12:])
	if hs < headerSize || int64(hs) > sector {
		return nil, fmt.Errorf("header size %d", hs)
	}
	want := binary.LittleEndian.Uint32(h[16:])
	binary.LittleEndian.PutUint32(h[16:], 0)
	if crc32.ChecksumIEEE(h[:hs]) != want {
		return nil, errors.New("header CRC mismatch")
	}
	if my := binary.LittleEndian.Uint64(h[24:]); my != uint64(lba) {
		return nil, fmt.Errorf("header at LBA %d says it is at %d", lba, my)
	}
	n := binary.LittleEndian.Uint32(h[80:])
	esz := binary.LittleEndian.Uint32(h[84:])
	if n == 0 || n > maxEntries || esz < 128 || esz > maxEntrySize || esz%8 != 0 {
		return nil, fmt.Errorf("%d entries of %d bytes", n, esz)
	}
	elba := int64(binary.LittleEndian.Uint64(h[72:]))
	arr := int64(n) * int64(esz)
	if elba < 1 || elba > size/sector || elba*sector+arr > size {
		return nil, errors.New("entry array outside the disk")
	}
	t := &Table{Sector: sector, DiskGUID: guidString(h[56:72]), FirstUsable: binary.LittleEndian.Uint64(h[40:]),
		LastUsable: binary.LittleEndian.Uint64(h[48:]), entrySize: int(esz), entries: make([]byte, arr)}
	if _, err := r.ReadAt(t.entries, elba*sector); err != nil {
		return nil, err
	}
	if crc32.ChecksumIEEE(t.entries) != binary.LittleEndian.Uint32(h[88:]) {
		return nil, errors.New("entry array CRC mismatch")
	}
	if t.FirstUsable > t.LastUsable || int64(t.LastUsable) >= size/sector {
		return nil, fmt.Errorf("usable sectors %d-%d", t.FirstUsable, t.LastUsable)
	}
	return t, nil
}

// Partitions returns the used entries in slot order.
func (t *Table) Partitions() []Partition {
	var out []Partition
	for i := 0; (i+1)*t.entrySize <= len(t.entries); i++ {
		e := t.entries[i*t.entrySize : (i+1)*t.entrySize]
		if allZero(e[:16]) {
			continue
		}
		var u []uint16
		for j := 56; j+1 < 128; j += 2 {
			c := binary.LittleEndian.Uint16(e[j:])
			if c == 0 {
				break
			}
			u = append(u, c)
		}
		out = append(out, Partition{Number: i + 1, Type: guidString(e[0:16]), GUID: guidString(e[16:32]),
			First: binary.LittleEndian.Uint64(e[32:]), Last: binary.LittleEndian.Uint64(e[40:]),
			Attributes: binary.LittleEndian.Uint64(e[48:]), Name: string(utf16.Decode(u))})
	}
	return out
}

// Add puts p in its slot (Number 0: the first free one), checking it lies in the usable area
// and overlaps no other partition. It returns the partition as stored.
func (t *Table) Add(p Partition) (Partition, error) {
	if p.First < t.FirstUsable || p.Last > t.LastUsable || p.Last < p.First {
		return p, fmt.Errorf("gpt: partition %d-%d outside the usable sectors %d-%d", p.First, p.Last, t.FirstUsable, t.LastUsable)
	}
	used := map[int]bool{}
	for _, q := range t.Partitions() {
		used[q.Number] = true
		if p.First <= q.Last && q.First <= p.Last {
			return p, fmt.Errorf("gpt: partition %d-%d overlaps partition %d", p.First, p.Last, q.Number)
		}
	}
	if p.Number == 0 {
		for p.Number = 1; used[p.Number]; p.Number++ {
		}
	}
	if p.Number < 1 || p.Number*t.entrySize > len(t.entries) || used[p.Number] {
		return p, fmt.Errorf("gpt: no free entry %d", p.Number)
	}
	if p.GUID == "" {
		p.GUID = NewGUID()
	}
	typ, err := guidBytes(p.Type)
	if err != nil {
		return p, err
	}
	id, err := guidBytes(p.GUID)
	if err != nil {
		return p, err
	}
	name := utf16.Encode([]rune(p.Name))
	if len(name) > 36 {
		return p, fmt.Errorf("gpt: name %q longer than 36 UTF-16 units", p.Name)
	}
	e := t.entries[(p.Number-1)*t.entrySize : p.Number*t.entrySize]
	clear(e)
	copy(e[0:], typ)
	copy(e[16:], id)
	binary.LittleEndian.PutUint64(e[32:], p.First)
	binary.LittleEndian.PutUint64(e[40:], p.Last)
	binary.LittleEndian.PutUint64(e[48:], p.Attributes)
	for i, c := range name {
		binary.LittleEndian.PutUint16(e[56+2*i:], c)
	}
	p.Type, p.GUID = strings.ToUpper(p.Type), strings.ToUpper(p.GUID)
	return p, nil
}

// Write writes the protective MBR (keeping any boot code), the primary header and entries,
// and the backup entries and header at the end of a disk of size bytes.
func (t *Table) Write(w io.WriterAt, r io.ReaderAt, size int64) error {
	n := size / t.Sector
	es := t.entrySectors()
	if uint64(n-2-es) < t.LastUsable {
		return fmt.Errorf("gpt: table's last usable sector %d beyond a disk of %d sectors", t.LastUsable, n)
	}
	mbr := make([]byte, 512)
	if r != nil {
		_, _ = r.ReadAt(mbr, 0)
	}
	clear(mbr[446:])
	e := mbr[446:462]
	e[1], e[2], e[3] = 0x00, 0x02, 0x00
	e[4] = 0xEE
	e[5], e[6], e[7] = 0xFF, 0xFF, 0xFF
	binary.LittleEndian.PutUint32(e[8:], 1)
	binary.LittleEndian.PutUint32(e[12:], uint32(min(n-1, 0xFFFFFFFF)))
	mbr[510], mbr[511] = 0x55, 0xAA
	arr := make([]byte, es*t.Sector)
	copy(arr, t.entries)
	backup := uint64(n - 1)
	writes := []struct {
		off int64
		b   []byte
	}{
		{0, mbr},
		{2 * t.Sector, arr},
		{int64(backup-uint64(es)) * t.Sector, arr},
		{t.Sector, t.header(1, backup, 2)},
		{int64(backup) * t.Sector, t.header(backup, 1, backup-uint64(es))},
	}
	for _, x := range writes {
		if _, err := w.WriteAt(x.b, x.off); err != nil {
			return fmt.Errorf("gpt: write at %d: %w", x.off, err)
		}
	}
	return nil
}

func (t *Table) header(my, alt, entriesLBA uint64) []byte {
	h := make([]byte, t.Sector)
	copy(h, "EFI PART")
	binary.LittleEndian.PutUint32(h[8:], 0x00010000)
	binary.LittleEndian.PutUint32(h[12:], headerSize)
	binary.LittleEndian.PutUint64(h[24:], my)
	binary.LittleEndian.PutUint64(h[32:], alt)
	binary.LittleEndian.PutUint64(h[40:], t.FirstUsable)
	binary.LittleEndian.PutUint64(h[48:], t.LastUsable)
	g, err := guidBytes(t.DiskGUID)
	if err != nil {
		g, _ = guidBytes(NewGUID())
	}
	copy(h[56:], g)
	binary.LittleEndian.PutUint64(h[72:], entriesLBA)
	binary.LittleEndian.PutUint32(h[80:], uint32(len(t.entries)/t.entrySize))
	binary.LittleEndian.PutUint32(h[84:], uint32(t.entrySize))
	binary.LittleEndian.PutUint32(h[88:], crc32.ChecksumIEEE(t.entries))
	binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h[:headerSize]))
	return h
}

// NewGUID returns a random (version 4) GUID.
func NewGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	s := strings.ToUpper(hex.EncodeToString(b[:]))
	return s[0:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:]
}

// guidString formats GPT's mixed-endian GUID bytes.
func guidString(b []byte) string {
	return fmt.Sprintf("%08X-%04X-%04X-%X-%X", binary.LittleEndian.Uint32(b[0:]), binary.LittleEndian.Uint16(b[4:]),
		binary.LittleEndian.Uint16(b[6:]), b[8:10], b[10:16])
}

func guidBytes(s string) ([]byte, error) {
	h, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil || len(h) != 16 || len(s) != 36 {
		return nil, fmt.Errorf("gpt: bad GUID %q", s)
	}
	b := make([]byte, 16)
	binary.LittleEndian.PutUint32(b[0:], binary.BigEndian.Uint32(h[0:]))
	binary.LittleEndian.PutUint16(b[4:], binary.BigEndian.Uint16(h[4:]))
	binary.LittleEndian.PutUint16(b[6:], binary.BigEndian.Uint16(h[6:]))
	copy(b[8:], h[8:])
	return b, nil
}

func allZero(b []byte) bool { return len(bytes.TrimLeft(b, "\x00")) == 0 }
