package gpt

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/diskfs/go-diskfs/backend/file"
	dgpt "github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/google/go-cmp/cmp"
)

const mib = 1 << 20

// memDisk is an in-memory disk.
type memDisk []byte

func (m memDisk) ReadAt(b []byte, off int64) (int, error)  { return copy(b, m[off:]), nil }
func (m memDisk) WriteAt(b []byte, off int64) (int, error) { return copy(m[off:], b), nil }

func diskFile(t *testing.T, size int64) (*os.File, string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	f.Truncate(size)
	return f, p
}

// otherReader reads the table with go-diskfs, an independent implementation.
func otherReader(t *testing.T, path string, sector int) []string {
	t.Helper()
	b, err := file.OpenFromPath(path, true)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	tbl, err := dgpt.Read(b, sector, sector)
	if err != nil {
		t.Fatalf("go-diskfs gpt.Read: %v", err)
	}
	if tbl.RecoveredFromBackup {
		t.Error("go-diskfs had to read the backup")
	}
	var out []string
	for _, p := range tbl.Partitions {
		out = append(out, strings.ToUpper(string(p.Type))+" "+p.Name+" "+strings.ToUpper(p.GUID)+" "+
			fmtU(p.Start)+"-"+fmtU(p.End))
	}
	return out
}

func fmtU(v uint64) string { return strconv.FormatUint(v, 10) }

func TestNewWriteRead(t *testing.T) {
	for _, sector := range []int64{512, 4096} {
		f, path := diskFile(t, 64*mib)
		tbl, err := New(64*mib, sector)
		if err != nil {
			t.Fatal(err)
		}
		a, err := tbl.Add(Partition{Type: TypeBIOSBoot, First: uint64(mib / sector), Last: uint64(9*mib/sector - 1), Name: "bios_grub"})
		if err != nil {
			t.Fatal(err)
		}
		b, err := tbl.Add(Partition{Type: TypeLinuxRAID, First: uint64(9 * mib / sector), Last: tbl.LastUsable, Name: "raid-0"})
		if err != nil {
			t.Fatal(err)
		}
		if err := tbl.Write(f, nil, 64*mib); err != nil {
			t.Fatal(err)
		}
		got, err := Read(f, 64*mib, sector)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]Partition{a, b}, got.Partitions()); diff != "" || a.Number != 1 || b.Number != 2 {
			t.Errorf("sector %d: Read(Write()) (-want +got):\n%s", sector, diff)
		}
		want := []string{TypeBIOSBoot + " bios_grub " + a.GUID + " " + fmtU(a.First) + "-" + fmtU(a.Last),
			TypeLinuxRAID + " raid-0 " + b.GUID + " " + fmtU(b.First) + "-" + fmtU(b.Last)}
		if diff := cmp.Diff(want, otherReader(t, path, int(sector))); diff != "" {
			t.Errorf("sector %d: go-diskfs reads (-want +got):\n%s", sector, diff)
		}
		if sector == 512 {
			sgdiskVerify(t, path)
		}
	}
}

func sgdiskVerify(t *testing.T, path string) {
	t.Helper()
	if _, err := exec.LookPath("sgdisk"); err != nil {
		if os.Getenv("FERRUM_SLOW") != "" {
			t.Fatal("sgdisk not installed: run agent/clean/test-setup.sh")
		}
		t.Log("sgdisk not installed; FERRUM_SLOW=1 (make test) installs it and checks the table with sgdisk -v")
		return
	}
	out, err := exec.Command("sgdisk", "-v", path).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "No problems found") {
		t.Errorf("sgdisk -v: %v\n%s", err, out)
	}
}

// TestGrowAndAdd: an image's table on a bigger disk (backup in the middle) is moved to the
// disk's end and gets one more partition, keeping the others byte for byte.
func TestGrowAndAdd(t *testing.T) {
	f, path := diskFile(t, 32*mib)
	img, _ := New(32*mib, 512)
	p1, _ := img.Add(Partition{Type: TypeEFISystem, First: 2048, Last: 4095, Name: "esp", Attributes: 1})
	p2, _ := img.Add(Partition{Type: TypeLinuxFilesystem, First: 4096, Last: img.LastUsable, Name: "root"})
	if err := img.Write(f, nil, 32*mib); err != nil {
		t.Fatal(err)
	}
	f.Truncate(128 * mib)
	tbl, err := Read(f, 128*mib, 512)
	if err != nil {
		t.Fatal(err)
	}
	if tbl.LastUsable != img.LastUsable {
		t.Fatalf("LastUsable = %d, want the image's %d", tbl.LastUsable, img.LastUsable)
	}
	if err := tbl.Resize(128 * mib); err != nil {
		t.Fatal(err)
	}
	if tbl.LastUsable != 128*2048-34 {
		t.Errorf("LastUsable after Resize = %d", tbl.LastUsable)
	}
	p3, err := tbl.Add(Partition{Type: TypeLinuxFilesystem, First: 128*2048 - 34 - 65536 + 1, Last: tbl.LastUsable, Name: "config-2"})
	if err != nil {
		t.Fatal(err)
	}
	if err := tbl.Write(f, f, 128*mib); err != nil {
		t.Fatal(err)
	}
	got, err := Read(f, 128*mib, 512)
	if err != nil || got.RecoveredFromBackup {
		t.Fatalf("Read = %v (backup %v)", err, got != nil && got.RecoveredFromBackup)
	}
	if diff := cmp.Diff([]Partition{p1, p2, p3}, got.Partitions()); diff != "" {
		t.Errorf("partitions (-want +got):\n%s", diff)
	}
	if n := len(otherReader(t, path, 512)); n != 3 {
		t.Errorf("go-diskfs reads %d partitions, want 3", n)
	}
	sgdiskVerify(t, path)
	// Primary destroyed: the backup at the end is read.
	f.WriteAt(make([]byte, 512), 512)
	got, err = Read(f, 128*mib, 512)
	if err != nil || !got.RecoveredFromBackup || len(got.Partitions()) != 3 {
		t.Errorf("Read(no primary) = %v, %v", got, err)
	}
}

func TestAddErrors(t *testing.T) {
	tbl, _ := New(64*mib, 512)
	if _, err := tbl.Add(Partition{Type: TypeLinuxRAID, First: 2048, Last: 4095}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		p    Partition
		want string
	}{
		{"overlap", Partition{Type: TypeLinuxRAID, First: 4000, Last: 5000}, "overlaps"},
		{"before-first-usable", Partition{Type: TypeLinuxRAID, First: 1, Last: 100}, "outside"},
		{"after-last-usable", Partition{Type: TypeLinuxRAID, First: 8192, Last: tbl.LastUsable + 1}, "outside"},
		{"reversed", Partition{Type: TypeLinuxRAID, First: 9000, Last: 8192}, "outside"},
		{"bad-type", Partition{Type: "nope", First: 8192, Last: 9000}, "GUID"},
		{"taken-slot", Partition{Number: 1, Type: TypeLinuxRAID, First: 8192, Last: 9000}, "no free entry"},
		{"long-name", Partition{Type: TypeLinuxRAID, First: 8192, Last: 9000, Name: strings.Repeat("n", 37)}, "longer"},
	}
	for _, tc := range tests {
		if _, err := tbl.Add(tc.p); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Add() = %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
	if err := tbl.Resize(1 * mib); err == nil {
		t.Error("Resize below the partitions' end succeeded")
	}
}

func FuzzRead(f *testing.F) {
	d := make(memDisk, 256*1024)
	tbl, _ := New(int64(len(d)), 512)
	tbl.Add(Partition{Type: TypeLinuxRAID, First: 40, Last: 100, Name: "x"})
	tbl.Write(d, nil, int64(len(d)))
	f.Add([]byte(d[:64*1024]), uint16(512))
	f.Add(bytes.Repeat([]byte("EFI PART"), 1024), uint16(512))
	f.Fuzz(func(t *testing.T, b []byte, sector uint16) {
		m := memDisk(b)
		got, err := Read(m, int64(len(m)), int64(sector))
		if err != nil {
			return
		}
		for _, p := range got.Partitions() {
			_ = p.Name
		}
		if got.Resize(int64(len(m))) == nil {
			out := make(memDisk, len(m))
			if err := got.Write(out, m, int64(len(m))); err != nil {
				t.Fatalf("Write after Read: %v", err)
			}
			if _, err := Read(out, int64(len(out)), int64(sector)); err != nil {
				t.Fatalf("Read(Write(Read(x))) = %v", err)
			}
		}
	})
}
