package raid

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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

const gib = 1 << 30

// fakeExec records every command; fn, when set, answers it.
type fakeExec struct {
	mu    sync.Mutex
	calls []string
	fn    func(argv []string) ([]byte, error)
}

func (f *fakeExec) Exec(_ context.Context, name string, args ...string) ([]byte, error) {
	argv := append([]string{name}, args...)
	f.mu.Lock()
	f.calls = append(f.calls, strings.Join(argv, " "))
	f.mu.Unlock()
	if f.fn != nil {
		return f.fn(argv)
	}
	return nil, nil
}

// mutating drops the read-only mdadm --detail calls.
func (f *fakeExec) mutating() []string {
	var out []string
	for _, c := range f.calls {
		if !strings.HasPrefix(c, "mdadm --detail") {
			out = append(out, c)
		}
	}
	return out
}

type fakeWiper struct{ wiped []string }

func (w *fakeWiper) EraseDeviceMetadata(p string) (proto.ErasedDevice, error) {
	w.wiped = append(w.wiped, p)
	return proto.ErasedDevice{Device: p, Method: proto.EraseMetadata}, nil
}

// sysArray adds md array name to a fake sysfs: members maps partition → disk.
func sysArray(t *testing.T, sys, name, level string, sizeBytes int64, members map[string]string) {
	t.Helper()
	dir := filepath.Join(sys, "block", name)
	for p, d := range map[string]string{"md/level": level, "md/array_state": "clean", "md/metadata_version": "1.2",
		"size": fmt.Sprint(sizeBytes / 512)} {
		mustWrite(t, filepath.Join(dir, p), d+"\n")
	}
	for part, disk := range members {
		if err := os.MkdirAll(filepath.Join(dir, "slaves", part), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(sys, "block", disk, part), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func mustWrite(t *testing.T, p, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func newRAID(t *testing.T, ex Execer, sys string, disks ...blockdev.Disk) (*RAID, *fakeWiper) {
	t.Helper()
	w := &fakeWiper{}
	r, err := New(Config{Log: zerolog.New(zerolog.NewTestWriter(t)), Exec: ex, Wiper: w, SysDir: sys,
		ListDisks: func() ([]blockdev.Disk, error) { return disks, nil }})
	if err != nil {
		t.Fatal(err)
	}
	return r, w
}

func sparse(t *testing.T, dir, name string, size int64) string {
	t.Helper()
	p := filepath.Join(dir, name)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return p
}

func ld(level string, size proto.RAIDSize, extra func(*proto.LogicalDisk)) proto.LogicalDisk {
	l := proto.LogicalDisk{RAIDLevel: level, SizeGB: size, Controller: proto.RAIDControllerSoftware}
	if extra != nil {
		extra(&l)
	}
	return l
}

func TestLayout(t *testing.T) {
	const mibS = 2048 // sectors of 512 bytes in a MiB
	tests := []struct {
		name   string
		size   int64
		sector int64
		lds    []proto.LogicalDisk
		boot   string
		want   [][3]uint64 // index, start, end
		err    string
	}{
		{"uefi/10G-then-max", 100 * gib, 512, []proto.LogicalDisk{ld("1", proto.RAIDSize{GB: 10}, nil), ld("0", proto.RAIDSize{Max: true}, nil)}, "uefi",
			[][3]uint64{{1, 551 * mibS, 551*mibS + 10*1024*mibS - 1}, {2, 551*mibS + 10*1024*mibS, 100*1024*mibS - mibS - 1}}, ""},
		{"bios/max", 1 * gib, 512, []proto.LogicalDisk{ld("1", proto.RAIDSize{Max: true}, nil)}, "bios",
			[][3]uint64{{1, mibS, 9*mibS - 1}, {2, 9 * mibS, 1023*mibS - 1}}, ""},
		{"4k-sectors", 2 * gib, 4096, []proto.LogicalDisk{ld("1", proto.RAIDSize{GB: 1}, nil)}, "uefi",
			[][3]uint64{{1, 551 * 256, 551*256 + 1024*256 - 1}}, ""},
		{"too-small", 10 * gib, 512, []proto.LogicalDisk{ld("1", proto.RAIDSize{GB: 10}, nil)}, "uefi", nil, "does not fit"},
		{"nothing-left-for-max", 1 * gib, 512, []proto.LogicalDisk{ld("1", proto.RAIDSize{GB: 1}, nil), ld("0", proto.RAIDSize{Max: true}, nil)}, "bios", nil, "does not fit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			parts, _, err := layout(tc.size, tc.sector, tc.lds, tc.boot)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("layout() = %v, want an error containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got [][3]uint64
			for _, p := range parts {
				got = append(got, [3]uint64{uint64(p.Number), p.First, p.Last})
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("layout() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCreateOnFiles(t *testing.T) {
	dir, sys := t.TempDir(), t.TempDir()
	if err := os.MkdirAll(filepath.Join(sys, "block"), 0o755); err != nil {
		t.Fatal(err)
	}
	d0, d1 := sparse(t, dir, "disk0.img", 4*gib), sparse(t, dir, "disk1.img", 4*gib)
	ex := &fakeExec{}
	ex.fn = func(argv []string) ([]byte, error) {
		switch argv[1] {
		case "--create": // the kernel would now show the array in sysfs
			md := strings.TrimPrefix(argv[2], "/dev/")
			sysArray(t, sys, md, "raid1", gib, map[string]string{filepath.Base(argv[len(argv)-2]): "disk0.img", filepath.Base(argv[len(argv)-1]): "disk1.img"})
		case "--detail":
			if argv[3] == "/dev/md0" {
				return []byte("MD_LEVEL=raid1\nMD_UUID=3b2e0c8e:5a1f4d21:9c7e6b5a:0f1e2d3c\nMD_NAME=ramdisk:root\n"), nil
			}
			return nil, errors.New("mdadm: cannot open")
		}
		return nil, nil
	}
	r, _ := newRAID(t, ex, sys)
	cfg := proto.RAIDConfig{LogicalDisks: []proto.LogicalDisk{
		ld("1", proto.RAIDSize{GB: 1}, func(l *proto.LogicalDisk) { l.VolumeName = "root" }),
		ld("0", proto.RAIDSize{Max: true}, func(l *proto.LogicalDisk) { l.IsRootVolume = true })}}
	st, err := r.Create(context.Background(), proto.CreateRAIDArgs{TargetRAIDConfig: cfg, Devices: []string{d0, d1}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"mdadm --create /dev/md0 --force --run --metadata=1 --level 1 --name root --raid-devices 2 " + d0 + "1 " + d1 + "1",
		"mdadm --create /dev/md1 --force --run --metadata=1 --level 0 --raid-devices 2 " + d0 + "2 " + d1 + "2",
	}
	if diff := cmp.Diff(want, ex.mutating()); diff != "" {
		t.Errorf("mdadm calls (-want +got):\n%s", diff)
	}
	if st.RootDevice != "/dev/md1" || len(st.Arrays) != 2 || st.Arrays[0].UUID != "3b2e0c8e:5a1f4d21:9c7e6b5a:0f1e2d3c" ||
		st.Arrays[0].VolumeName != "root" || st.Arrays[0].RAIDLevel != "1" || st.Arrays[0].SizeBytes != gib {
		t.Errorf("Create() = %+v", st)
	}
	if !cmp.Equal(st.Arrays[0].PhysicalDisks, []string{"/dev/disk0.img", "/dev/disk1.img"}) {
		t.Errorf("physical disks = %v", st.Arrays[0].PhysicalDisks)
	}
	// The GPT as another reader sees it.
	for _, d := range []string{d0, d1} {
		b, err := file.OpenFromPath(d, true)
		if err != nil {
			t.Fatal(err)
		}
		tbl, err := gpt.Read(b, 512, 512)
		b.Close()
		if err != nil {
			t.Fatalf("gpt.Read(%s): %v", d, err)
		}
		var got []string
		for _, p := range tbl.Partitions {
			if p.Type != gpt.Unused {
				got = append(got, fmt.Sprintf("%d %s %d-%d", p.Index, p.Type, p.Start, p.End))
			}
		}
		wantParts := []string{
			fmt.Sprintf("1 %s %d-%d", gpt.LinuxRAID, 551*2048, 551*2048+1024*2048-1),
			fmt.Sprintf("2 %s %d-%d", gpt.LinuxRAID, 1575*2048, 4*1024*2048-2048-1),
		}
		if diff := cmp.Diff(wantParts, got); diff != "" {
			t.Errorf("%s partitions (-want +got):\n%s", d, diff)
		}
	}
	// A second create over the same disks is refused: they are members now.
	if _, err := r.Create(context.Background(), proto.CreateRAIDArgs{TargetRAIDConfig: cfg, Devices: []string{d0, d1}}); err == nil {
		t.Error("Create over member disks succeeded")
	}
}

func TestCreateErrors(t *testing.T) {
	dir, sys := t.TempDir(), t.TempDir()
	if err := os.MkdirAll(filepath.Join(sys, "block"), 0o755); err != nil {
		t.Fatal(err)
	}
	d0, d1 := sparse(t, dir, "a", 2*gib), sparse(t, dir, "b", 2*gib)
	used := sparse(t, dir, "c", 2*gib)
	if err := os.WriteFile(used, append(make([]byte, 510), 0x55, 0xAA), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(used, 2*gib); err != nil {
		t.Fatal(err)
	}
	disks := []blockdev.Disk{
		{Name: "/dev/sda", Type: "disk", Serial: "S1", Size: 100 * gib},
		{Name: "/dev/sdb", Type: "disk", Serial: "S2", Size: 100 * gib},
		{Name: "/dev/sdc", Type: "disk", Serial: "S2", Size: 200 * gib},
		{Name: "/dev/md5", Type: "raid1"},
	}
	raid1 := func(extra func(*proto.LogicalDisk)) proto.RAIDConfig {
		return proto.RAIDConfig{LogicalDisks: []proto.LogicalDisk{ld("1", proto.RAIDSize{Max: true}, extra)}}
	}
	phys := func(p ...string) func(*proto.LogicalDisk) {
		return func(l *proto.LogicalDisk) {
			for _, s := range p {
				l.PhysicalDisks = append(l.PhysicalDisks, []byte(s))
			}
		}
	}
	tests := []struct {
		name string
		args proto.CreateRAIDArgs
		code proto.Code
		want string
	}{
		{"partitioned-disk", proto.CreateRAIDArgs{TargetRAIDConfig: raid1(nil), Devices: []string{d0, used}}, "", "has a partition table"},
		{"raid5-on-two", proto.CreateRAIDArgs{TargetRAIDConfig: proto.RAIDConfig{LogicalDisks: []proto.LogicalDisk{
			ld("1", proto.RAIDSize{GB: 1}, nil), ld("5", proto.RAIDSize{Max: true}, nil)}}, Devices: []string{d0, d1}}, proto.CodeBadRequest, "at least 3"},
		{"hint-matches-none", proto.CreateRAIDArgs{TargetRAIDConfig: raid1(phys(`"/dev/sda"`, `{"serial":"S9"}`))}, "", "S9"},
		{"same-disk-twice", proto.CreateRAIDArgs{TargetRAIDConfig: raid1(phys(`"/dev/sda"`, `{"serial":"S1"}`))}, "", "S1"},
		{"unknown-hint", proto.CreateRAIDArgs{TargetRAIDConfig: raid1(phys(`"/dev/sda"`, `{"color":"red"}`))}, proto.CodeBadRequest, "unknown hint"},
		{"not-enough-disks", proto.CreateRAIDArgs{TargetRAIDConfig: raid1(nil)}, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ds := disks
			if tc.name == "not-enough-disks" {
				ds, tc.want = disks[:1], "at least 2 disks"
			}
			r, _ := newRAID(t, &fakeExec{}, sys, ds...)
			_, err := r.Create(context.Background(), tc.args)
			if err == nil || !strings.Contains(err.Error(), tc.want) || (tc.code != "" && proto.CodeOf(err) != tc.code) {
				t.Errorf("Create() = %v, want an error containing %q (code %q)", err, tc.want, tc.code)
			}
		})
	}
	// Each entry is the first disk in name order it matches that no earlier entry took.
	r, _ := newRAID(t, &fakeExec{}, sys, disks...)
	for _, tc := range []struct {
		phys []string
		want []string
	}{
		{[]string{`"sda"`, `{"serial":"S2","size":200}`}, []string{"/dev/sda", "/dev/sdc"}},
		{[]string{`{"serial":"s== S2"}`, `{"serial":"S2"}`}, []string{"/dev/sdb", "/dev/sdc"}},
		{[]string{`{"size":">= 100"}`, `{"size":">= 100"}`, `{"size":">= 100"}`}, []string{"/dev/sda", "/dev/sdb", "/dev/sdc"}},
	} {
		got, err := r.members(proto.CreateRAIDArgs{TargetRAIDConfig: raid1(phys(tc.phys...))})
		if err != nil || !cmp.Equal(got, tc.want) {
			t.Errorf("members(%v) = %v, %v; want %v", tc.phys, got, err, tc.want)
		}
	}
}

func TestDelete(t *testing.T) {
	sys := t.TempDir()
	sysArray(t, sys, "md0", "raid1", gib, map[string]string{"sda1": "sda", "sdb1": "sdb"})
	sysArray(t, sys, "md1", "raid10", 4*gib, map[string]string{"sda2": "sda", "sdb2": "sdb", "sdc2": "sdc", "sdd2": "sdd"})
	mustWrite(t, filepath.Join(sys, "block", "sda", "size"), "1\n") // a disk, not an array
	ex := &fakeExec{}
	r, w := newRAID(t, ex, sys)
	got, err := r.Delete(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"mdadm --stop /dev/md0", "mdadm --zero-superblock /dev/sda1", "mdadm --zero-superblock /dev/sdb1",
		"mdadm --stop /dev/md1", "mdadm --zero-superblock /dev/sda2", "mdadm --zero-superblock /dev/sdb2",
		"mdadm --zero-superblock /dev/sdc2", "mdadm --zero-superblock /dev/sdd2",
	}
	if diff := cmp.Diff(want, ex.mutating()); diff != "" {
		t.Errorf("mdadm calls (-want +got):\n%s", diff)
	}
	wantRes := proto.DeleteRAIDResult{Stopped: []string{"/dev/md0", "/dev/md1"}, Wiped: []string{"/dev/sda", "/dev/sdb", "/dev/sdc", "/dev/sdd"}}
	if diff := cmp.Diff(wantRes, got); diff != "" || !cmp.Equal(w.wiped, wantRes.Wiped) {
		t.Errorf("Delete() (-want +got):\n%s\nwiped %v", diff, w.wiped)
	}
	// A failing mdadm stops the deletion with its message.
	ex.fn = func([]string) ([]byte, error) {
		return nil, errors.New("mdadm: Cannot get exclusive access to /dev/md0")
	}
	if _, err := r.Delete(context.Background()); err == nil || !strings.Contains(err.Error(), "exclusive access") {
		t.Errorf("Delete(mdadm failing) = %v", err)
	}
}

func TestList(t *testing.T) {
	sys := t.TempDir()
	sysArray(t, sys, "md127", "raid10", 8*gib, map[string]string{"nvme0n1p2": "nvme0n1", "nvme1n1p2": "nvme1n1"})
	ex := &fakeExec{fn: func([]string) ([]byte, error) {
		return []byte("MD_LEVEL=raid10\nMD_DEVICES=2\nMD_METADATA=1.2\nMD_UUID=aa:bb:cc:dd\nMD_NAME=data\n"), nil
	}}
	r, _ := newRAID(t, ex, sys)
	got, err := r.List(context.Background())
	want := []proto.RAIDArray{{Name: "/dev/md127", RAIDLevel: "1+0", SizeBytes: 8 * gib, UUID: "aa:bb:cc:dd", VolumeName: "data",
		Members: []string{"/dev/nvme0n1p2", "/dev/nvme1n1p2"}, PhysicalDisks: []string{"/dev/nvme0n1", "/dev/nvme1n1"},
		State: "clean", Metadata: "1.2"}}
	if diff := cmp.Diff(want, got); err != nil || diff != "" {
		t.Errorf("List() = %v (-want +got):\n%s", err, diff)
	}
}

func TestPartName(t *testing.T) {
	for in, want := range map[string]string{"/dev/sda": "/dev/sda2", "/dev/nvme0n1": "/dev/nvme0n1p2", "/dev/loop3": "/dev/loop3p2", "/dev/vdb": "/dev/vdb2"} {
		if got := PartName(in, 2); got != want {
			t.Errorf("PartName(%s, 2) = %s, want %s", in, got, want)
		}
	}
}
