package raid

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/ferrumhq/ferrum/agent/clean"
	"github.com/ferrumhq/ferrum/agent/internal/gpt"
	"github.com/ferrumhq/ferrum/shared/proto"
)

// loopDisk attaches a sparse file of size bytes to a loop device that scans partitions. Loop
// devices need root: the tests run when FERRUM_LOOPDEV=1 (make test sets it).
func loopDisk(t *testing.T, size int64) string {
	t.Helper()
	if os.Getenv("FERRUM_LOOPDEV") == "" {
		t.Skip("needs root and loop devices; set FERRUM_LOOPDEV=1 (make test does)")
	}
	p := sparse(t, t.TempDir(), "disk.img", size)
	out, err := exec.Command("losetup", "--find", "--show", "--partscan", p).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup %s: %v: %s", p, err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "--detach", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup --detach %s: %v: %s", dev, err, out)
		}
	})
	return dev
}

// TestLoopPartition partitions two loop devices: the kernel shows the new partitions, and
// mdadm (recorded, not run) gets their device nodes.
func TestLoopPartition(t *testing.T) {
	a, b := loopDisk(t, 64<<20), loopDisk(t, 64<<20)
	needGPTParser(t)
	ex := &fakeExec{}
	r, _ := newRAID(t, ex, t.TempDir())
	if err := os.MkdirAll(filepath.Join(r.cfg.SysDir, "block"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := r.Create(context.Background(), proto.CreateRAIDArgs{BootMode: proto.BootModeBIOS, Devices: []string{a, b},
		TargetRAIDConfig: proto.RAIDConfig{LogicalDisks: []proto.LogicalDisk{ld("1", proto.RAIDSize{Max: true}, nil)}}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{fmt.Sprintf("mdadm --create /dev/md0 --force --run --metadata=1 --level 1 --raid-devices 2 %sp2 %sp2", a, b)}
	if diff := cmp.Diff(want, ex.mutating()); diff != "" {
		t.Errorf("mdadm calls (-want +got):\n%s", diff)
	}
	for _, p := range []string{a + "p1", a + "p2", b + "p1", b + "p2"} {
		if st, err := os.Stat(p); err != nil || st.Mode()&os.ModeDevice == 0 {
			t.Errorf("partition %s: %v", p, err)
		}
	}
}

// TestLoopMD builds a real RAID-1 with mdadm over two loop devices, lists it, and deletes it.
func TestLoopMD(t *testing.T) {
	a, b := loopDisk(t, 96<<20), loopDisk(t, 96<<20)
	needGPTParser(t)
	if _, err := os.Stat("/proc/mdstat"); err != nil {
		t.Skip("the kernel has no md driver (no /proc/mdstat; modprobe md_mod failed here), so mdadm cannot build arrays; the argv is checked by TestLoopPartition and TestCreateOnFiles")
	}
	if _, err := exec.LookPath("mdadm"); err != nil {
		t.Fatal("mdadm not installed: run agent/raid/test-setup.sh")
	}
	log := zerolog.New(zerolog.NewTestWriter(t))
	cl, err := clean.New(clean.Config{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(Config{Log: log, Wiper: cl})
	if err != nil {
		t.Fatal(err)
	}
	st, err := r.Create(context.Background(), proto.CreateRAIDArgs{BootMode: proto.BootModeBIOS, Devices: []string{a, b},
		TargetRAIDConfig: proto.RAIDConfig{LogicalDisks: []proto.LogicalDisk{ld("1", proto.RAIDSize{Max: true}, func(l *proto.LogicalDisk) { l.VolumeName = "ferrumtest" })}}})
	t.Cleanup(func() { _, _ = r.Delete(context.Background()) })
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Arrays) != 1 || st.Arrays[0].RAIDLevel != "1" || st.Arrays[0].VolumeName != "ferrumtest" ||
		!cmp.Equal(st.Arrays[0].Members, []string{a + "p2", b + "p2"}) {
		t.Errorf("Create() = %+v", st)
	}
	mdstat, _ := os.ReadFile("/proc/mdstat")
	if !strings.Contains(string(mdstat), strings.TrimPrefix(st.RootDevice, "/dev/")+" : active raid1") {
		t.Errorf("/proc/mdstat:\n%s", mdstat)
	}
	res, err := r.Delete(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !cmp.Equal(res.Stopped, []string{st.RootDevice}) || len(res.Wiped) != 2 {
		t.Errorf("Delete() = %+v", res)
	}
	if arrays, err := r.List(context.Background()); err != nil || len(arrays) != 0 {
		t.Errorf("List() after Delete = %v, %v", arrays, err)
	}
}

// needGPTParser skips when the kernel does not read GPTs (CONFIG_EFI_PARTITION off, as in
// some sandboxes): partitions of a loop device then never appear.
func needGPTParser(t *testing.T) {
	t.Helper()
	dev := loopDisk(t, 16<<20)
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	parts, _, err := layout(16<<20, 512, []proto.LogicalDisk{ld("1", proto.RAIDSize{Max: true}, nil)}, proto.BootModeBIOS)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := gpt.New(16<<20, 512)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range parts {
		if _, err := tbl.Add(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := tbl.Write(f, nil, 16<<20); err != nil {
		t.Fatal(err)
	}
	f.Sync()
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), uintptr(unix.BLKRRPART), 0); errno != 0 {
		t.Fatalf("BLKRRPART %s: %v", dev, errno)
	}
	k := filepath.Base(dev)
	if _, err := os.Stat(filepath.Join("/sys/block", k, k+"p1")); err != nil {
		t.Skip("this kernel does not read GPT partition tables (CONFIG_EFI_PARTITION off): partitions of loop devices never appear")
	}
}
