package clean

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ferrumhq/ferrum/shared/proto"
)

// loopDevice attaches path to a free loop device for the test's duration. Loop devices need
// root: the test runs when FERRUM_LOOPDEV=1 (make test sets it).
func loopDevice(t *testing.T, path string) string {
	t.Helper()
	if os.Getenv("FERRUM_LOOPDEV") == "" {
		t.Skip("needs root and loop devices; set FERRUM_LOOPDEV=1 (make test does)")
	}
	out, err := exec.Command("losetup", "--find", "--show", path).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup %s: %v: %s (FERRUM_LOOPDEV=1 needs root and /dev/loop-control)", path, err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "--detach", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup --detach %s: %v: %s", dev, err, out)
		}
	})
	return dev
}

func TestLoopEraseDevices(t *testing.T) {
	path := filepath.Join(t.TempDir(), "disk.img")
	data := bytes.Repeat([]byte{0x5A}, 8*mib)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	dev := loopDevice(t, path)
	c := newCleaner(t)
	for _, tc := range []struct {
		name                  string
		allowDiscard, express bool
		want                  string
	}{
		{"zero", false, false, proto.EraseZero},
		{"discard", true, false, proto.EraseDiscard},
		{"express-discards", false, true, proto.EraseDiscard},
	} {
		t.Run(tc.name, func(t *testing.T) {
			writeAt(t, path, 0, data)
			res, err := c.EraseDevices(context.Background(), proto.EraseArgs{Devices: []string{dev}, AllowDiscard: tc.allowDiscard, Express: tc.express}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if d := res.Devices[0]; d.Method != tc.want || d.Bytes != int64(len(data)) {
				t.Errorf("EraseDevices(%s) = %+v, want method %s over %d bytes", dev, d, tc.want, len(data))
			}
			if got := readFile(t, path, 0, len(data)); !bytes.Equal(got, make([]byte, len(data))) {
				t.Errorf("%s: backing file not zeroed", tc.name)
			}
		})
	}
}

func TestLoopEraseMetadata(t *testing.T) {
	path, _ := gptDisk(t, 64*mib)
	dev := loopDevice(t, path)
	// Held open exclusively (as a mounted or md member device is): refused.
	fd, err := unix.Open(dev, unix.O_RDONLY|unix.O_EXCL|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = newCleaner(t).EraseMetadata(context.Background(), proto.EraseArgs{Devices: []string{dev}})
	unix.Close(fd)
	if !errors.Is(err, ErrInUse) {
		t.Errorf("EraseMetadata(busy %s) = %v, want ErrInUse", dev, err)
	}
	res, err := newCleaner(t).EraseMetadata(context.Background(), proto.EraseArgs{Devices: []string{dev}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(res.Devices[0].Signatures, "gpt") {
		t.Errorf("signatures = %v, want gpt", res.Devices[0].Signatures)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if p, table := partitions(f, 64*mib, 512); table != "" || p != nil {
		t.Errorf("after erasure through %s: partitions() = %v, %q", dev, p, table)
	}
}
