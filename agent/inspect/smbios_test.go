package inspect

import (
	"encoding/binary"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var writeSMBIOS = flag.Bool("write-smbios", false, "write the SMBIOS tables of testdata/qemu-q35-ovmf")

// smbiosTable encodes one structure: header, formatted area (from offset 4), strings.
func smbiosTable(typ byte, handle uint16, formatted []byte, strs ...string) []byte {
	b := []byte{typ, byte(4 + len(formatted)), byte(handle), byte(handle >> 8)}
	b = append(b, formatted...)
	for _, s := range strs {
		b = append(b, s...)
		b = append(b, 0)
	}
	if len(strs) == 0 {
		b = append(b, 0)
	}
	return append(b, 0)
}

// smbiosEntry64 is an SMBIOS 3.0 entry point for a table area of n bytes.
func smbiosEntry64(n int) []byte {
	e := make([]byte, 0x18)
	copy(e, "_SM3_")
	e[6], e[7], e[8], e[9], e[10] = 0x18, 3, 0, 0, 1
	binary.LittleEndian.PutUint32(e[12:], uint32(n))
	binary.LittleEndian.PutUint64(e[16:], 0x7fb3d000)
	var sum byte
	for _, c := range e {
		sum += c
	}
	e[5] = -sum
	return e
}

// qemuSMBIOS is what QEMU (testing-peers §6.6 options, 2 GiB, one socket) puts in the tables:
// types 0, 1, 3, 4, 17 and the end marker.
func qemuSMBIOS(memMB uint16, populated byte) (entry, dmi []byte) {
	bios := make([]byte, 0x1a-4)
	bios[0], bios[1], bios[4] = 1, 2, 3 // vendor, version, release date
	binary.LittleEndian.PutUint16(bios[2:], 0xe800)
	sys := make([]byte, 0x1b-4)
	sys[0], sys[1], sys[2], sys[3] = 1, 2, 3, 4
	// 6c9e1f32-3b52-4b0e-9c1d-1f2e3d4c5b6a, first three fields little-endian
	copy(sys[4:], []byte{0x32, 0x1f, 0x9e, 0x6c, 0x52, 0x3b, 0x0e, 0x4b, 0x9c, 0x1d, 0x1f, 0x2e, 0x3d, 0x4c, 0x5b, 0x6a})
	sys[20], sys[21], sys[22] = 6, 5, 6 // wake-up power switch, SKU, family
	chassis := make([]byte, 0x16-4)
	chassis[0], chassis[1], chassis[3], chassis[4] = 1, 1, 2, 3 // manufacturer, type other, serial, asset
	cpu := make([]byte, 0x30-4)
	cpu[0], cpu[1], cpu[2], cpu[3], cpu[12] = 1, 3, 0xfe, 2, 3 // socket, central, family2, manufacturer, version
	binary.LittleEndian.PutUint16(cpu[16:], 2000)              // max speed
	binary.LittleEndian.PutUint16(cpu[18:], 2000)              // current speed
	cpu[20] = populated | 0x01                                 // status: populated, enabled
	cpu[31], cpu[32], cpu[33] = 2, 2, 2                        // cores, enabled, threads
	mem := make([]byte, 0x28-4)
	binary.LittleEndian.PutUint16(mem[0:], 0x1000)
	binary.LittleEndian.PutUint16(mem[2:], 0xfffe)
	binary.LittleEndian.PutUint16(mem[4:], 0xffff)
	binary.LittleEndian.PutUint16(mem[6:], 0xffff)
	binary.LittleEndian.PutUint16(mem[8:], memMB)
	mem[10], mem[12], mem[14] = 0x09, 1, 0x07 // DIMM, locator, RAM
	mem[19] = 2                               // manufacturer
	dmi = append(dmi, smbiosTable(0, 0, bios, "BMTest", "1.2.3", "02/02/2022")...)
	dmi = append(dmi, smbiosTable(1, 0x100, sys, "Acme", "BM-1000", "rev2", "SYS-SERIAL-0001", "SKU42", "bm")...)
	dmi = append(dmi, smbiosTable(3, 0x300, chassis, "Acme", "CHASSIS-9", "ASSET-1")...)
	dmi = append(dmi, smbiosTable(4, 0x400, cpu, "CPU 0", "QEMU", "pc-q35-8.2")...)
	dmi = append(dmi, smbiosTable(17, 0x1100, mem, "DIMM 0", "QEMU")...)
	dmi = append(dmi, smbiosTable(127, 0x7f00, nil)...)
	return smbiosEntry64(len(dmi)), dmi
}

// TestWriteSMBIOSFixture writes testdata/qemu-q35-ovmf's tables with -write-smbios, and
// otherwise checks that the committed ones are what qemuSMBIOS makes.
func TestWriteSMBIOSFixture(t *testing.T) {
	entry, dmi := qemuSMBIOS(2048, 0x40)
	dir := filepath.Join("testdata", "qemu-q35-ovmf", "sys", "firmware", "dmi", "tables")
	if *writeSMBIOS {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range map[string][]byte{"smbios_entry_point": entry, "DMI": dmi} {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, want := range map[string][]byte{"smbios_entry_point": entry, "DMI": dmi} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("%v (go test -run TestWriteSMBIOSFixture -write-smbios writes it)", err)
		}
		if !cmp.Equal(got, want) {
			t.Errorf("%s differs from qemuSMBIOS (go test -run TestWriteSMBIOSFixture -write-smbios rewrites it)", name)
		}
	}
}

func TestParseSMBIOS(t *testing.T) {
	entry, dmi := qemuSMBIOS(2048, 0x40)
	full := dmiInfo{manufacturer: "Acme", product: "BM-1000", serial: "SYS-SERIAL-0001",
		uuid: "6c9e1f32-3b52-4b0e-9c1d-1f2e3d4c5b6a", biosVendor: "BMTest", biosVersion: "1.2.3", biosDate: "02/02/2022",
		memoryBytes: 2 << 30, sockets: 1, cpuModel: "pc-q35-8.2", cpuMaxMHz: 2000}
	extEntry, extDMI := qemuSMBIOS(0x7fff, 0x40) // 0x7fff: the size is in the extended field (0 here)
	_, emptySocket := qemuSMBIOS(1024, 0)
	tests := []struct {
		name       string
		entry, dmi []byte
		want       dmiInfo
		ok         bool
	}{
		{"qemu", entry, dmi, full, true},
		{"extended-size", extEntry, extDMI, func() dmiInfo { d := full; d.memoryBytes = 0; return d }(), true},
		{"unpopulated-socket", smbiosEntry64(len(emptySocket)), emptySocket,
			func() dmiInfo {
				d := full
				d.memoryBytes, d.sockets, d.cpuModel, d.cpuMaxMHz = 1<<30, 0, "", 0
				return d
			}(), true},
		{"bad-anchor", append([]byte("_XX_"), entry[4:]...), dmi, dmiInfo{}, false},
		{"bad-checksum", append(append([]byte{}, entry[:5]...), append([]byte{entry[5] + 1}, entry[6:]...)...), dmi, dmiInfo{}, false},
		{"short-entry", entry[:10], dmi, dmiInfo{}, false},
		{"truncated-table", entry, dmi[:30], dmiInfo{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseSMBIOS(tc.entry, tc.dmi)
			if (err == nil) != tc.ok {
				t.Fatalf("parseSMBIOS error = %v, want ok %v", err, tc.ok)
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(dmiInfo{})); diff != "" {
				t.Errorf("parseSMBIOS (-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzParseSMBIOS(f *testing.F) {
	entry, dmi := qemuSMBIOS(2048, 0x40)
	f.Add(entry, dmi)
	f.Add(entry, dmi[:40])
	f.Add(entry[:0x18], []byte{17, 4, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, entry, dmi []byte) {
		info, err := parseSMBIOS(entry, dmi)
		if err != nil && info != (dmiInfo{}) {
			t.Fatalf("parseSMBIOS returned %+v with error %v", info, err)
		}
	})
}
