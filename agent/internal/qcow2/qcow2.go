// Package qcow2 parses the parts of a qcow2 image that converting it to raw needs: the header
// with its extensions, L1 entries and L2 tables. It refuses what the agent must never follow
// (backing files, external data files, encryption) and bounds every size, so a hostile header
// cannot make the caller allocate or seek without limit. It does no I/O.
//
// Only agent/image imports it.
package qcow2

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Magic is the first four bytes of every qcow2 file.
const Magic = "QFI\xfb"

// Bounds on what Parse accepts.
const (
	MinClusterBits = 9  // 512 B, as qemu
	MaxClusterBits = 21 // 2 MiB, as qemu
	// MaxL1Bytes bounds the L1 table (qemu allows 32 MiB; 4 MiB maps 256 TiB at 64 KiB clusters).
	MaxL1Bytes = 4 << 20
	// MaxVirtualSize bounds the disk an image describes (1 PiB).
	MaxVirtualSize = 1 << 50
	// maxOffset bounds any host offset in the file (bits 9..55 of an entry).
	maxOffset = 1<<56 - 1
)

// Incompatible feature bits.
const (
	IncompatDirty        = 1 << 0
	IncompatCorrupt      = 1 << 1
	IncompatExternalData = 1 << 2
	IncompatCompression  = 1 << 3
	IncompatExtendedL2   = 1 << 4
	incompatKnown        = IncompatDirty | IncompatCorrupt | IncompatExternalData | IncompatCompression | IncompatExtendedL2
)

// Compression types (header byte 104).
const (
	CompressionZlib = 0
	CompressionZstd = 1
)

// Header extension types the parser refuses or reads.
const (
	extEnd          = 0x00000000
	extBackingFmt   = 0xe2792aca
	extExternalData = 0x44415441
	extEncryption   = 0x0537be77
)

// ErrNotQCOW2 is returned for data that does not start with the qcow2 magic.
var ErrNotQCOW2 = errors.New("qcow2: no qcow2 magic")

// Header is a parsed, validated qcow2 header.
type Header struct {
	Version         uint32
	ClusterBits     uint32
	VirtualSize     uint64
	L1Size          uint32 // entries
	L1Offset        uint64
	RefcountOffset  uint64
	RefcountCluster uint32 // refcount table length in clusters
	Incompatible    uint64
	HeaderLength    uint32
	Compression     uint8
}

// ClusterSize is the cluster size in bytes.
func (h *Header) ClusterSize() uint64 { return 1 << h.ClusterBits }

// ExtendedL2 reports 128-bit L2 entries with 32 subclusters each.
func (h *Header) ExtendedL2() bool { return h.Incompatible&IncompatExtendedL2 != 0 }

// L2Entries is the number of entries per L2 table.
func (h *Header) L2Entries() uint64 {
	if h.ExtendedL2() {
		return h.ClusterSize() / 16
	}
	return h.ClusterSize() / 8
}

// L2Span is how many guest bytes one L2 table maps.
func (h *Header) L2Span() uint64 { return h.L2Entries() * h.ClusterSize() }

// SubclusterSize is the size of one subcluster (the cluster with standard L2 entries).
func (h *Header) SubclusterSize() uint64 {
	if h.ExtendedL2() {
		return h.ClusterSize() / 32
	}
	return h.ClusterSize()
}

// Parse validates the header in b, which holds the start of the file (at least the header
// and its extensions; the first cluster is always enough).
func Parse(b []byte) (*Header, error) {
	if len(b) < 4 || string(b[:4]) != Magic {
		return nil, ErrNotQCOW2
	}
	if len(b) < 72 {
		return nil, fmt.Errorf("qcow2: header truncated at %d bytes", len(b))
	}
	be := binary.BigEndian
	h := &Header{
		Version:         be.Uint32(b[4:]),
		ClusterBits:     be.Uint32(b[20:]),
		VirtualSize:     be.Uint64(b[24:]),
		L1Size:          be.Uint32(b[36:]),
		L1Offset:        be.Uint64(b[40:]),
		RefcountOffset:  be.Uint64(b[48:]),
		RefcountCluster: be.Uint32(b[56:]),
		HeaderLength:    72,
	}
	if h.Version != 2 && h.Version != 3 {
		return nil, fmt.Errorf("qcow2: version %d, want 2 or 3", h.Version)
	}
	if off := be.Uint64(b[8:]); off != 0 {
		return nil, fmt.Errorf("qcow2: the image names a backing file; only self-contained images are written")
	}
	if c := be.Uint32(b[32:]); c != 0 {
		return nil, fmt.Errorf("qcow2: the image is encrypted (method %d); encrypted images are refused", c)
	}
	if h.ClusterBits < MinClusterBits || h.ClusterBits > MaxClusterBits {
		return nil, fmt.Errorf("qcow2: cluster_bits %d out of [%d, %d]", h.ClusterBits, MinClusterBits, MaxClusterBits)
	}
	if h.Version == 3 {
		if len(b) < 104 {
			return nil, fmt.Errorf("qcow2: v3 header truncated at %d bytes", len(b))
		}
		h.Incompatible = be.Uint64(b[72:])
		autoclear := be.Uint64(b[88:])
		if ro := be.Uint32(b[96:]); ro > 6 {
			return nil, fmt.Errorf("qcow2: refcount_order %d out of [0, 6]", ro)
		}
		h.HeaderLength = be.Uint32(b[100:])
		if h.HeaderLength < 104 || h.HeaderLength%8 != 0 {
			return nil, fmt.Errorf("qcow2: header_length %d", h.HeaderLength)
		}
		if uint64(h.HeaderLength) > h.ClusterSize() || int(h.HeaderLength) > len(b) {
			return nil, fmt.Errorf("qcow2: header_length %d past the first cluster", h.HeaderLength)
		}
		if h.HeaderLength > 104 {
			h.Compression = b[104]
		}
		if h.Incompatible&IncompatExternalData != 0 || autoclear&(1<<1) != 0 {
			return nil, fmt.Errorf("qcow2: the image names an external data file; only self-contained images are written")
		}
		if h.Incompatible&IncompatCorrupt != 0 {
			return nil, fmt.Errorf("qcow2: the image is marked corrupt")
		}
		if u := h.Incompatible &^ incompatKnown; u != 0 {
			return nil, fmt.Errorf("qcow2: unknown incompatible features %#x", u)
		}
		switch {
		case h.Incompatible&IncompatCompression == 0 && h.Compression != CompressionZlib:
			return nil, fmt.Errorf("qcow2: compression type %d without its feature bit", h.Compression)
		case h.Compression != CompressionZlib && h.Compression != CompressionZstd:
			return nil, fmt.Errorf("qcow2: unknown compression type %d", h.Compression)
		}
		if h.ExtendedL2() && h.ClusterBits < 14 {
			return nil, fmt.Errorf("qcow2: extended L2 entries need clusters of at least 16 KiB")
		}
	}
	if h.VirtualSize > MaxVirtualSize {
		return nil, fmt.Errorf("qcow2: virtual size %d above %d", h.VirtualSize, uint64(MaxVirtualSize))
	}
	need := (h.VirtualSize + h.L2Span() - 1) / h.L2Span()
	if uint64(h.L1Size) < need {
		return nil, fmt.Errorf("qcow2: l1_size %d cannot map %d bytes (needs %d)", h.L1Size, h.VirtualSize, need)
	}
	if uint64(h.L1Size)*8 > MaxL1Bytes {
		return nil, fmt.Errorf("qcow2: L1 table of %d entries above %d bytes", h.L1Size, MaxL1Bytes)
	}
	if err := h.checkTable("L1 table", h.L1Offset, uint64(h.L1Size)*8); err != nil && h.L1Size > 0 {
		return nil, err
	}
	if err := h.checkTable("refcount table", h.RefcountOffset, uint64(h.RefcountCluster)<<h.ClusterBits); err != nil {
		return nil, err
	}
	if err := h.extensions(b); err != nil {
		return nil, err
	}
	return h, nil
}

func (h *Header) checkTable(what string, off, n uint64) error {
	switch {
	case off == 0 || off%h.ClusterSize() != 0:
		return fmt.Errorf("qcow2: %s offset %#x not cluster-aligned", what, off)
	case off > maxOffset || n > maxOffset-off:
		return fmt.Errorf("qcow2: %s at %#x+%d out of range", what, off, n)
	}
	return nil
}

// extensions walks the header extensions, refusing an external data file or encryption.
func (h *Header) extensions(b []byte) error {
	if h.Version == 2 {
		// Version 2 has extensions after the 72-byte header too (backing format only).
		h.HeaderLength = 72
	}
	off := uint64(h.HeaderLength)
	for range 1024 {
		if off+8 > uint64(len(b)) || off+8 > h.ClusterSize() {
			return fmt.Errorf("qcow2: header extensions run past the first cluster")
		}
		typ := binary.BigEndian.Uint32(b[off:])
		n := uint64(binary.BigEndian.Uint32(b[off+4:]))
		switch typ {
		case extEnd:
			return nil
		case extExternalData:
			return fmt.Errorf("qcow2: the image names an external data file; only self-contained images are written")
		case extEncryption:
			return fmt.Errorf("qcow2: the image carries an encryption header; encrypted images are refused")
		case extBackingFmt:
			return fmt.Errorf("qcow2: the image names a backing file format; only self-contained images are written")
		}
		off += 8 + (n+7)&^7
	}
	return fmt.Errorf("qcow2: too many header extensions")
}

// L2Offset decodes an L1 entry: the offset of its L2 table, 0 when the range is unallocated.
func (h *Header) L2Offset(e uint64) (uint64, error) {
	off := e & 0x00ff_ffff_ffff_fe00
	if e&^(1<<63|0x00ff_ffff_ffff_fe00) != 0 {
		return 0, fmt.Errorf("qcow2: L1 entry %#x has reserved bits set", e)
	}
	if off%h.ClusterSize() != 0 {
		return 0, fmt.Errorf("qcow2: L2 table offset %#x not cluster-aligned", off)
	}
	return off, nil
}

// Kind classifies an L2 entry.
type Kind uint8

// Kinds of L2 entries.
const (
	Unallocated Kind = iota // reads as zeros (no backing file)
	Zero                    // reads as zeros
	Data                    // a standard cluster at Offset
	Compressed              // Length bytes (an upper bound) from Offset, any byte alignment
)

// Entry is a decoded L2 entry.
type Entry struct {
	Kind   Kind
	Offset uint64
	Length uint64 // compressed only
	// Alloc and Zeros are the subcluster bitmaps of an extended entry (bit i: subcluster i);
	// for a standard Data entry Alloc is all ones.
	Alloc, Zeros uint32
}

// Entry decodes entry i of the L2 table tbl (one cluster).
func (h *Header) Entry(tbl []byte, i int) (Entry, error) {
	be := binary.BigEndian
	var e, bitmap uint64
	if h.ExtendedL2() {
		e, bitmap = be.Uint64(tbl[16*i:]), be.Uint64(tbl[16*i+8:])
	} else {
		e = be.Uint64(tbl[8*i:])
	}
	if e&(1<<62) != 0 { // compressed
		if h.ExtendedL2() && bitmap != 0 {
			return Entry{}, fmt.Errorf("qcow2: compressed cluster with a subcluster bitmap")
		}
		x := 62 - (h.ClusterBits - 8)
		off := e & (1<<x - 1)
		sectors := (e>>x)&(1<<(h.ClusterBits-8)-1) + 1
		n := sectors*512 - off%512
		if off == 0 || off > maxOffset {
			return Entry{}, fmt.Errorf("qcow2: compressed cluster at offset %#x", off)
		}
		return Entry{Kind: Compressed, Offset: off, Length: n}, nil
	}
	off := e & 0x00ff_ffff_ffff_fe00
	if e&0x3f00_0000_0000_01fe != 0 {
		return Entry{}, fmt.Errorf("qcow2: L2 entry %#x has reserved bits set", e)
	}
	if off%h.ClusterSize() != 0 {
		return Entry{}, fmt.Errorf("qcow2: data cluster offset %#x not cluster-aligned", off)
	}
	if h.ExtendedL2() {
		if e&1 != 0 {
			return Entry{}, fmt.Errorf("qcow2: extended L2 entry with the zero bit set")
		}
		alloc, zeros := uint32(bitmap), uint32(bitmap>>32)
		if alloc&zeros != 0 {
			return Entry{}, fmt.Errorf("qcow2: subcluster both allocated and zero")
		}
		if off == 0 {
			if alloc != 0 {
				return Entry{}, fmt.Errorf("qcow2: allocated subclusters without a host cluster")
			}
			return Entry{Kind: Unallocated}, nil
		}
		if alloc == 0 {
			return Entry{Kind: Zero}, nil
		}
		return Entry{Kind: Data, Offset: off, Alloc: alloc, Zeros: zeros}, nil
	}
	switch {
	case e&1 != 0:
		if h.Version < 3 {
			return Entry{}, fmt.Errorf("qcow2: zero cluster flag in a version 2 image")
		}
		return Entry{Kind: Zero}, nil
	case off == 0:
		return Entry{Kind: Unallocated}, nil
	}
	return Entry{Kind: Data, Offset: off, Alloc: ^uint32(0)}, nil
}
