package qcow2

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// header builds a valid v3 header of 64 KiB clusters for a 1 GiB disk, then applies mod.
func header(mod func(b []byte)) []byte {
	b := make([]byte, 64<<10)
	be := binary.BigEndian
	copy(b, Magic)
	be.PutUint32(b[4:], 3)
	be.PutUint32(b[20:], 16)
	be.PutUint64(b[24:], 1<<30)
	be.PutUint32(b[36:], 2)
	be.PutUint64(b[40:], 3<<16)
	be.PutUint64(b[48:], 1<<16)
	be.PutUint32(b[56:], 1)
	be.PutUint32(b[96:], 4)
	be.PutUint32(b[100:], 112)
	if mod != nil {
		mod(b)
	}
	return b
}

func ext(b []byte, at int, typ, n uint32) {
	binary.BigEndian.PutUint32(b[at:], typ)
	binary.BigEndian.PutUint32(b[at+4:], n)
}

func TestParse(t *testing.T) {
	be := binary.BigEndian
	tests := []struct {
		name string
		b    []byte
		want *Header
		err  string
	}{
		{"v3", header(nil), &Header{Version: 3, ClusterBits: 16, VirtualSize: 1 << 30, L1Size: 2, L1Offset: 3 << 16,
			RefcountOffset: 1 << 16, RefcountCluster: 1, HeaderLength: 112}, ""},
		{"v2", header(func(b []byte) { be.PutUint32(b[4:], 2); clear(b[72:112]) }), &Header{Version: 2, ClusterBits: 16,
			VirtualSize: 1 << 30, L1Size: 2, L1Offset: 3 << 16, RefcountOffset: 1 << 16, RefcountCluster: 1, HeaderLength: 72}, ""},
		{"zstd", header(func(b []byte) { be.PutUint64(b[72:], IncompatCompression); b[104] = 1 }), &Header{Version: 3,
			ClusterBits: 16, VirtualSize: 1 << 30, L1Size: 2, L1Offset: 3 << 16, RefcountOffset: 1 << 16, RefcountCluster: 1,
			HeaderLength: 112, Incompatible: IncompatCompression, Compression: CompressionZstd}, ""},
		{"dirty-is-fine", header(func(b []byte) { be.PutUint64(b[72:], IncompatDirty) }), &Header{Version: 3, ClusterBits: 16,
			VirtualSize: 1 << 30, L1Size: 2, L1Offset: 3 << 16, RefcountOffset: 1 << 16, RefcountCluster: 1,
			HeaderLength: 112, Incompatible: IncompatDirty}, ""},
		{"empty", nil, nil, "magic"},
		{"raw", make([]byte, 512), nil, "magic"},
		{"short", header(nil)[:40], nil, "truncated"},
		{"short-v3", header(nil)[:90], nil, "truncated"},
		{"version-1", header(func(b []byte) { be.PutUint32(b[4:], 1) }), nil, "version 1"},
		{"version-4", header(func(b []byte) { be.PutUint32(b[4:], 4) }), nil, "version 4"},
		{"backing-file", header(func(b []byte) { be.PutUint64(b[8:], 512); be.PutUint32(b[16:], 9) }), nil, "backing file"},
		{"encrypted-aes", header(func(b []byte) { be.PutUint32(b[32:], 1) }), nil, "encrypted"},
		{"encrypted-luks", header(func(b []byte) { be.PutUint32(b[32:], 2) }), nil, "encrypted"},
		{"cluster-bits-8", header(func(b []byte) { be.PutUint32(b[20:], 8) }), nil, "cluster_bits"},
		{"cluster-bits-22", header(func(b []byte) { be.PutUint32(b[20:], 22) }), nil, "cluster_bits"},
		{"external-data", header(func(b []byte) { be.PutUint64(b[72:], IncompatExternalData) }), nil, "external data file"},
		{"external-data-raw", header(func(b []byte) { be.PutUint64(b[88:], 2) }), nil, "external data file"},
		{"corrupt", header(func(b []byte) { be.PutUint64(b[72:], IncompatCorrupt) }), nil, "corrupt"},
		{"unknown-incompatible", header(func(b []byte) { be.PutUint64(b[72:], 1<<5) }), nil, "unknown incompatible"},
		{"compression-without-bit", header(func(b []byte) { b[104] = 1 }), nil, "without its feature bit"},
		{"compression-unknown", header(func(b []byte) { be.PutUint64(b[72:], IncompatCompression); b[104] = 7 }), nil, "unknown compression"},
		{"extended-l2-small-clusters", header(func(b []byte) { be.PutUint64(b[72:], IncompatExtendedL2); be.PutUint32(b[20:], 12) }), nil, "16 KiB"},
		{"refcount-order", header(func(b []byte) { be.PutUint32(b[96:], 7) }), nil, "refcount_order"},
		{"header-length-odd", header(func(b []byte) { be.PutUint32(b[100:], 105) }), nil, "header_length"},
		{"header-length-huge", header(func(b []byte) { be.PutUint32(b[100:], 1<<20) }), nil, "first cluster"},
		{"virtual-size-huge", header(func(b []byte) { be.PutUint64(b[24:], 1<<60) }), nil, "virtual size"},
		{"l1-too-small", header(func(b []byte) { be.PutUint32(b[36:], 1) }), nil, "cannot map"},
		{"l1-too-large", header(func(b []byte) { be.PutUint32(b[36:], MaxL1Bytes/8+1) }), nil, "L1 table"},
		{"l1-unaligned", header(func(b []byte) { be.PutUint64(b[40:], 3<<16+8) }), nil, "L1 table offset"},
		{"l1-out-of-range", header(func(b []byte) { be.PutUint64(b[40:], 1<<62) }), nil, "L1 table"},
		{"refcount-unaligned", header(func(b []byte) { be.PutUint64(b[48:], 4) }), nil, "refcount table"},
		{"ext-data-file-name", header(func(b []byte) { ext(b, 112, extExternalData, 4) }), nil, "external data file"},
		{"ext-encryption", header(func(b []byte) { ext(b, 112, extEncryption, 16) }), nil, "encryption"},
		{"ext-backing-format", header(func(b []byte) { ext(b, 112, extBackingFmt, 3) }), nil, "backing file format"},
		{"ext-past-cluster", header(func(b []byte) { ext(b, 112, 0x6803f857, 1<<20) }), nil, "past the first cluster"},
		{"ext-after-feature-table", header(func(b []byte) { ext(b, 112, 0x6803f857, 48); ext(b, 168, extExternalData, 1) }), nil, "external data file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.b)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Parse() = %+v, %v; want an error containing %q", got, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse() = %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Parse() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEntry(t *testing.T) {
	std, _ := Parse(header(nil))
	v2, _ := Parse(header(func(b []byte) { binary.BigEndian.PutUint32(b[4:], 2); clear(b[72:112]) }))
	extl2, err := Parse(header(func(b []byte) {
		binary.BigEndian.PutUint64(b[72:], IncompatExtendedL2)
		binary.BigEndian.PutUint32(b[36:], 4)
	}))
	if err != nil {
		t.Fatal(err)
	}
	u64 := func(v ...uint64) []byte {
		var b []byte
		for _, x := range v {
			b = binary.BigEndian.AppendUint64(b, x)
		}
		return b
	}
	// A compressed entry at 64 KiB clusters: offset in bits 0..53, extra sectors above.
	comp := uint64(1)<<62 | 3<<54 | 0x12345
	tests := []struct {
		name string
		h    *Header
		tbl  []byte
		want Entry
		err  string
	}{
		{"unallocated", std, u64(0), Entry{Kind: Unallocated}, ""},
		{"zero", std, u64(1), Entry{Kind: Zero}, ""},
		{"zero-with-offset", std, u64(1<<63 | 5<<16 | 1), Entry{Kind: Zero}, ""},
		{"data", std, u64(1<<63 | 5<<16), Entry{Kind: Data, Offset: 5 << 16, Alloc: ^uint32(0)}, ""},
		{"compressed", std, u64(comp), Entry{Kind: Compressed, Offset: 0x12345, Length: 4*512 - 0x145}, ""},
		{"data-unaligned", std, u64(5<<16 + 512), Entry{}, "not cluster-aligned"},
		{"reserved-bits", std, u64(1<<61 | 5<<16), Entry{}, "reserved"},
		{"zero-in-v2", v2, u64(1), Entry{}, "version 2"},
		{"compressed-at-0", std, u64(1 << 62), Entry{}, "compressed cluster at offset"},
		{"ext-data", extl2, u64(5<<16, 0x0000_0002_0000_0001), Entry{Kind: Data, Offset: 5 << 16, Alloc: 1, Zeros: 2}, ""},
		{"ext-zero", extl2, u64(5<<16, 0xffff_ffff_0000_0000), Entry{Kind: Zero}, ""},
		{"ext-unallocated", extl2, u64(0, 0), Entry{Kind: Unallocated}, ""},
		{"ext-both", extl2, u64(5<<16, 0x0000_0001_0000_0001), Entry{}, "both allocated and zero"},
		{"ext-alloc-without-cluster", extl2, u64(0, 1), Entry{}, "without a host cluster"},
		{"ext-zero-bit", extl2, u64(5<<16|1, 1), Entry{}, "zero bit"},
		{"ext-compressed-bitmap", extl2, u64(comp, 1), Entry{}, "bitmap"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.h.Entry(tc.tbl, 0)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Entry() = %+v, %v; want an error containing %q", got, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Entry() = %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Entry() mismatch (-want +got):\n%s", diff)
			}
		})
	}
	for _, tc := range []struct {
		e    uint64
		want uint64
		err  bool
	}{{0, 0, false}, {1<<63 | 7<<16, 7 << 16, false}, {7<<16 + 512, 0, true}, {1<<62 | 7<<16, 0, true}, {7<<16 | 1, 0, true}} {
		got, err := std.L2Offset(tc.e)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("L2Offset(%#x) = %#x, %v; want %#x, error %v", tc.e, got, err, tc.want, tc.err)
		}
	}
	if std.L2Entries() != 8192 || extl2.L2Entries() != 4096 || extl2.SubclusterSize() != 2048 || std.L2Span() != 512<<20 {
		t.Errorf("geometry: %d %d %d %d", std.L2Entries(), extl2.L2Entries(), extl2.SubclusterSize(), std.L2Span())
	}
}

// FuzzParse: any bytes give a header or an error; an accepted header is bounded and decodes
// any L1 or L2 table without panicking, every entry within the file's addressable range.
func FuzzParse(f *testing.F) {
	f.Add(header(nil))
	f.Add(header(func(b []byte) { binary.BigEndian.PutUint32(b[4:], 2); clear(b[72:112]) })[:4096])
	f.Add(header(func(b []byte) { binary.BigEndian.PutUint64(b[72:], IncompatExtendedL2|IncompatCompression); b[104] = 1 })[:512])
	f.Add(header(func(b []byte) { ext(b, 112, 0x6803f857, 48); ext(b, 168, extExternalData, 1) })[:512])
	f.Add([]byte(Magic))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := Parse(b)
		if err != nil {
			return
		}
		if h.ClusterBits < MinClusterBits || h.ClusterBits > MaxClusterBits || h.VirtualSize > MaxVirtualSize ||
			uint64(h.L1Size)*8 > MaxL1Bytes || h.Version < 2 || h.Version > 3 {
			t.Fatalf("Parse accepted out-of-bounds header %+v", h)
		}
		// Use the input's tail as a table.
		tbl := make([]byte, h.ClusterSize())
		copy(tbl, b)
		for i := range int(h.L2Entries()) {
			e, err := h.Entry(tbl, i)
			if err != nil {
				continue
			}
			if e.Kind == Data && (e.Offset == 0 || e.Offset%h.ClusterSize() != 0) {
				t.Fatalf("entry %d: data at %#x", i, e.Offset)
			}
			if e.Kind == Compressed && (e.Length == 0 || e.Length > 2*h.ClusterSize()) {
				t.Fatalf("entry %d: compressed length %d", i, e.Length)
			}
		}
		for i := 0; i+8 <= len(tbl); i += 8 {
			if off, err := h.L2Offset(binary.BigEndian.Uint64(tbl[i:])); err == nil && off%h.ClusterSize() != 0 {
				t.Fatalf("L2 offset %#x not aligned", off)
			}
		}
	})
}
