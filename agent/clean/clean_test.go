package clean

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"

	"github.com/ferrumhq/ferrum/agent/internal/blockdev"
	"github.com/ferrumhq/ferrum/shared/proto"
)

const mib = 1 << 20

func newCleaner(t *testing.T, disks ...blockdev.Disk) *Cleaner {
	t.Helper()
	c, err := New(Config{Log: zerolog.New(zerolog.NewTestWriter(t)), ChunkSize: 1 * mib,
		ListDisks: func() ([]blockdev.Disk, error) { return disks, nil }})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func writeAt(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string, off int64, n int) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}

func le32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }

// gptDisk makes a sparse disk image of size bytes with a GPT of three partitions, an ext4
// superblock magic in the first, md 1.2 and 1.0 superblocks in the second, XFS in the third,
// and a data marker in the middle of the first. It returns the partitions.
func gptDisk(t *testing.T, size int64) (string, []extent) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	b, err := file.OpenFromPath(path, false)
	if err != nil {
		t.Fatal(err)
	}
	table := &gpt.Table{LogicalSectorSize: 512, PhysicalSectorSize: 512, ProtectiveMBR: true, Partitions: []*gpt.Partition{
		{Index: 1, Start: 2048, End: 2048 + 20480 - 1, Type: gpt.LinuxFilesystem, Name: "root"},
		{Index: 2, Start: 22528, End: 22528 + 40960 - 1, Type: gpt.LinuxRAID, Name: "raid"},
		{Index: 3, Start: 63488, End: 63488 + 20480 - 1, Type: gpt.LinuxFilesystem, Name: "data"},
	}}
	w, err := b.Writable()
	if err != nil {
		t.Fatal(err)
	}
	if err := table.Write(w, size); err != nil {
		t.Fatal(err)
	}
	b.Close()
	parts := []extent{{2048 * 512, 22528 * 512}, {22528 * 512, 63488 * 512}, {63488 * 512, 83968 * 512}}
	writeAt(t, path, parts[0].Start+1024+56, []byte{0x53, 0xEF})
	writeAt(t, path, parts[0].Start+5*mib, []byte("DATA"))
	writeAt(t, path, parts[1].Start+4096, le32(0xa92b4efc))
	writeAt(t, path, parts[1].End-8192, le32(0xa92b4efc))
	writeAt(t, path, parts[2].Start, []byte("XFSB"))
	return path, parts
}

func TestPartitionsAndSignatures(t *testing.T) {
	path, want := gptDisk(t, 64*mib)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, table := partitions(f, 64*mib, 512)
	if table != "gpt" || !cmp.Equal(got, want, cmp.AllowUnexported(extent{})) {
		t.Errorf("partitions() = %v, %q; want %v, gpt", got, table, want)
	}
	for i, sig := range []string{"ext4", "linux_raid_member", "xfs"} {
		if s := signatures(f, want[i].Start, want[i].End); !cmp.Equal(s, []string{sig}) {
			t.Errorf("signatures(partition %d) = %v, want [%s]", i+1, s, sig)
		}
	}
	// The backup GPT alone still gives the partitions.
	writeAt(t, path, 512, make([]byte, 512))
	if got, table := partitions(f, 64*mib, 512); table != "gpt" || len(got) != 3 {
		t.Errorf("partitions(backup only) = %v, %q", got, table)
	}
}

func TestEraseDeviceMetadata(t *testing.T) {
	path, parts := gptDisk(t, 64*mib)
	c := newCleaner(t)
	res, err := c.EraseMetadata(context.Background(), proto.EraseArgs{Devices: []string{path}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Devices) != 1 || res.Devices[0].Method != proto.EraseMetadata || res.Devices[0].Bytes != 64*mib {
		t.Fatalf("EraseMetadata = %+v", res)
	}
	if got, want := res.Devices[0].Signatures, []string{"gpt", "PMBR", "ext4", "linux_raid_member", "xfs"}; !cmp.Equal(got, want) {
		t.Errorf("signatures = %v, want %v", got, want)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if p, table := partitions(f, 64*mib, 512); table != "" || p != nil {
		t.Errorf("after erasure partitions() = %v, %q", p, table)
	}
	for i, p := range append(parts, extent{0, 64 * mib}) {
		if s := signatures(f, p.Start, p.End); len(s) > 0 {
			t.Errorf("after erasure region %d has %v", i, s)
		}
	}
	if got := readFile(t, path, parts[0].Start+5*mib, 4); string(got) != "DATA" {
		t.Errorf("data in the middle of a partition = %q, want it left alone", got)
	}
}

func TestRegions(t *testing.T) {
	tests := []struct {
		name  string
		size  int64
		parts []extent
		want  []region
	}{
		{"small-disk", 512 * 1024, nil, []region{{0, 512 * 1024}}},
		{"disk", 8 * mib, nil, []region{{0, mib}, {7 * mib, mib}}},
		{"partition-merged-with-disk-ends", 8 * mib, []extent{{mib, 7 * mib}}, []region{{0, 2 * mib}, {6 * mib, 2 * mib}}},
		{"btrfs-mirror", 128 * mib, nil, []region{{0, mib}, {64 * mib, 4096}, {127 * mib, mib}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := regions(tc.size, tc.parts); !cmp.Equal(got, tc.want, cmp.AllowUnexported(region{})) {
				t.Errorf("regions(%d, %v) = %v, want %v", tc.size, tc.parts, got, tc.want)
			}
		})
	}
}

func TestMDSuperblocks(t *testing.T) {
	// mdadm's own offsets for a 100 MiB device: 1.0 at size-8K rounded to 4K; 0.90 at the
	// last 64K boundary minus 64K.
	got := mdSuperblocks(100 * mib)
	want := []int64{0, 4096, 100*mib - 8192, 100*mib - 65536}
	if !cmp.Equal(got, want) {
		t.Errorf("mdSuperblocks(100 MiB) = %v, want %v", got, want)
	}
}

func TestEraseDevicesZeroes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "disk.img")
	data := bytes.Repeat([]byte{0xA5}, 3*mib+4096)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	c := newCleaner(t)
	var pcts []float64
	res, err := c.EraseDevices(context.Background(), proto.EraseArgs{Devices: []string{path}, AllowDiscard: true},
		func(p float64, _ string) { pcts = append(pcts, p) })
	if err != nil {
		t.Fatal(err)
	}
	if d := res.Devices[0]; d.Method != proto.EraseZero || d.Bytes != int64(len(data)) {
		t.Errorf("EraseDevices = %+v, want zero over %d bytes", d, len(data))
	}
	if got := readFile(t, path, 0, len(data)); !bytes.Equal(got, make([]byte, len(data))) {
		t.Error("file not zeroed")
	}
	if len(pcts) < 4 || pcts[len(pcts)-1] != 100 {
		t.Errorf("progress = %v, want several reports ending at 100", pcts)
	}
	for i := 1; i < len(pcts); i++ {
		if pcts[i] < pcts[i-1] {
			t.Errorf("progress went back: %v", pcts)
		}
	}
}

func TestEraseErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(path, make([]byte, 4*mib), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c := newCleaner(t)
	if _, err := c.EraseDevices(ctx, proto.EraseArgs{Devices: []string{path}}, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("EraseDevices(cancelled) = %v, want context.Canceled", err)
	}
	if _, err := c.EraseMetadata(context.Background(), proto.EraseArgs{Devices: []string{filepath.Join(dir, "missing")}}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("EraseMetadata(missing) = %v, want ErrNotExist", err)
	}
	if _, err := c.EraseMetadata(context.Background(), proto.EraseArgs{Devices: []string{dir}}); err == nil || !strings.Contains(err.Error(), "not a block device") {
		t.Errorf("EraseMetadata(directory) = %v, want not a block device", err)
	}
	if _, err := c.RunEraseDevices(context.Background(), []byte(`{"devices":["rel"]}`), nil); proto.CodeOf(err) != proto.CodeBadRequest {
		t.Errorf("RunEraseDevices(relative) = %v, want bad_request", err)
	}
	if _, err := newCleaner(t).EraseMetadata(context.Background(), proto.EraseArgs{}); err == nil || !strings.Contains(err.Error(), "no disks") {
		t.Errorf("EraseMetadata(no disks) = %v", err)
	}
}

func TestTargets(t *testing.T) {
	sys := t.TempDir()
	for _, p := range []string{"block/md0/slaves/sdd1", "block/md0/slaves/sde", "block/sdd/sdd1"} {
		if err := os.MkdirAll(filepath.Join(sys, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	disks := []blockdev.Disk{
		{Name: "/dev/md0", Type: "raid1"},
		{Name: "/dev/sda", Type: "disk"},
		{Name: "/dev/sdb", Type: "disk", Removable: true},
		{Name: "/dev/sdc", Type: "disk", ReadOnly: true},
		{Name: "/dev/sdd", Type: "disk"},
		{Name: "/dev/sde", Type: "disk"},
	}
	c, err := New(Config{SysDir: sys, ListDisks: func() ([]blockdev.Disk, error) { return disks, nil }})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.targets(proto.EraseArgs{SkipReadOnly: true})
	want := []target{{"/dev/md0", ""}, {"/dev/sda", ""}, {"/dev/sdb", "removable"}, {"/dev/sdc", "read-only"},
		{"/dev/sdd", "member of /dev/md0"}, {"/dev/sde", "member of /dev/md0"}}
	if err != nil || !cmp.Equal(got, want, cmp.AllowUnexported(target{})) {
		t.Errorf("targets() = %v, %v; want %v", got, err, want)
	}
}

// TestAgainstUtilLinux checks the erasure with the tools an operator would use: sgdisk makes
// the table, mkfs.ext4 the filesystem, and blkid and wipefs find nothing afterwards.
func TestAgainstUtilLinux(t *testing.T) {
	for _, tool := range []string{"sgdisk", "mkfs.ext4", "blkid", "wipefs"} {
		needTool(t, tool)
	}
	path := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 96*mib); err != nil {
		t.Fatal(err)
	}
	run(t, "sgdisk", "-n", "1:2048:+40M", "-n", "2:0:0", path)
	// A filesystem inside partition 1, made on a copy and written back at its offset.
	fs := path + ".p1"
	if err := os.Truncate(fs, 40*mib); err != nil {
		if err := os.WriteFile(fs, make([]byte, 40*mib), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	run(t, "mkfs.ext4", "-q", "-F", fs)
	b, _ := os.ReadFile(fs)
	writeAt(t, path, 2048*512, b[:2*mib])
	if out := run(t, "wipefs", "--no-act", path); !strings.Contains(out, "gpt") {
		t.Fatalf("wipefs before erasure: %s", out)
	}
	res, err := newCleaner(t).EraseMetadata(context.Background(), proto.EraseArgs{Devices: []string{path}})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Devices[0].Signatures; !slices.Contains(got, "gpt") || !slices.Contains(got, "ext4") {
		t.Errorf("signatures = %v, want gpt and ext4", got)
	}
	if out := run(t, "wipefs", "--no-act", path); strings.TrimSpace(out) != "" {
		t.Errorf("wipefs after erasure: %s", out)
	}
	if out, err := exec.Command("blkid", "-p", "-O", "1048576", path).CombinedOutput(); err == nil {
		t.Errorf("blkid still finds partition 1's filesystem: %s", out)
	}
}

func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("FERRUM_SLOW") != "" {
			t.Fatalf("%s not installed: run agent/clean/test-setup.sh", name)
		}
		t.Skipf("%s not installed; FERRUM_SLOW=1 (make test) installs it through agent/clean/test-setup.sh", name)
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// FuzzPartitions reads arbitrary bytes as a disk: no panic, every extent inside the disk.
func FuzzPartitions(f *testing.F) {
	mbr := make([]byte, 1024)
	mbr[510], mbr[511] = 0x55, 0xAA
	copy(mbr[446:], []byte{0, 0, 0, 0, 0x83, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0})
	f.Add(mbr, uint16(512))
	g := make([]byte, 4096)
	copy(g[512:], "EFI PART")
	binary.LittleEndian.PutUint64(g[512+72:], 2)
	binary.LittleEndian.PutUint32(g[512+80:], 4)
	binary.LittleEndian.PutUint32(g[512+84:], 128)
	g[1024] = 1
	binary.LittleEndian.PutUint64(g[1024+32:], 3)
	binary.LittleEndian.PutUint64(g[1024+40:], 6)
	f.Add(g, uint16(512))
	f.Fuzz(func(t *testing.T, disk []byte, sector uint16) {
		r := bytes.NewReader(disk)
		size := int64(len(disk))
		parts, _ := partitions(r, size, int64(sector))
		for _, p := range parts {
			if p.Start < 0 || p.End > size || p.End <= p.Start {
				t.Fatalf("extent %v outside a disk of %d bytes", p, size)
			}
			_ = signatures(r, p.Start, p.End)
		}
		for _, rg := range regions(size, parts) {
			if rg.Off < 0 || rg.Off+rg.Len > size {
				t.Fatalf("region %v outside a disk of %d bytes", rg, size)
			}
		}
	})
}

func TestEraseDevicesConcurrently(t *testing.T) {
	dir := t.TempDir()
	var devs []string
	for i := range 5 {
		p := filepath.Join(dir, fmt.Sprintf("d%d.img", i))
		if err := os.WriteFile(p, bytes.Repeat([]byte{byte(i + 1)}, (i+1)*mib), 0o600); err != nil {
			t.Fatal(err)
		}
		devs = append(devs, p)
	}
	c := newCleaner(t)
	var mu sync.Mutex
	last := 0.0
	res, err := c.EraseDevices(context.Background(), proto.EraseArgs{Devices: devs}, func(p float64, _ string) {
		mu.Lock()
		defer mu.Unlock()
		if p < last {
			t.Errorf("progress went back from %v to %v", last, p)
		}
		last = p
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range res.Devices {
		if d.Device != devs[i] || d.Method != proto.EraseZero || d.Bytes != int64((i+1)*mib) {
			t.Errorf("result %d = %+v, want %s zeroed", i, d, devs[i])
		}
		if got := readFile(t, devs[i], 0, (i+1)*mib); !bytes.Equal(got, make([]byte, (i+1)*mib)) {
			t.Errorf("%s not zeroed", devs[i])
		}
	}
	// One bad device fails the whole command with its error.
	_, err = c.EraseDevices(context.Background(), proto.EraseArgs{Devices: append(devs, dir)}, nil)
	if err == nil || !strings.Contains(err.Error(), "not a block device") {
		t.Errorf("EraseDevices(with a directory) = %v", err)
	}
}

// TestEraseDevicesExpress: a file has no secure erase or discard, so express erasure erases
// only its metadata, leaving the data.
func TestEraseDevicesExpress(t *testing.T) {
	path, parts := gptDisk(t, 64*mib)
	res, err := newCleaner(t).EraseDevices(context.Background(), proto.EraseArgs{Devices: []string{path}, Express: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := res.Devices[0]; d.Method != proto.EraseMetadata || !slices.Contains(d.Signatures, "gpt") {
		t.Errorf("EraseDevices(express) = %+v, want the metadata erased", d)
	}
	if got := readFile(t, path, parts[0].Start+5*mib, 4); string(got) != "DATA" {
		t.Errorf("data = %q, want it left alone by an express erasure", got)
	}
}
