package image

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferrumhq/ferrum/shared/proto"
)

// loopDevice attaches a file of size bytes full of old data to a loop device.
func loopDevice(t *testing.T, size int) string {
	t.Helper()
	if os.Getenv("FERRUM_LOOPDEV") == "" {
		t.Skip("set FERRUM_LOOPDEV=1 (as root) to write to a loop device (make test does)")
	}
	backing := filepath.Join(t.TempDir(), "backing")
	writeFile(t, backing, bytes.Repeat([]byte{0xee}, size))
	out, err := exec.Command("losetup", "-f", "--show", backing).CombinedOutput()
	if err != nil {
		t.Fatalf("FERRUM_LOOPDEV is set but losetup failed: %v: %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	return dev
}

// TestWriteLoopDevice writes to a real block device: O_DIRECT writes, BLKZEROOUT for the
// zeros, and the bytes past the image left alone.
func TestWriteLoopDevice(t *testing.T) {
	dev := loopDevice(t, 64*mib)
	dir := t.TempDir()
	disk := filepath.Join(dir, "disk.raw")
	genDisk(t, disk, 40*mib, 4)
	srv := serve(t, dir, false, false)
	formats := []string{"raw"} // and qcow2 with FERRUM_QEMU_IMG
	if os.Getenv("FERRUM_QEMU_IMG") != "" {
		runCmd(t, "qemu-img", "convert", "-q", "-c", "-f", "raw", "-O", "qcow2", disk, filepath.Join(dir, "disk.qcow2"))
		formats = append(formats, "qcow2")
	}
	want, _ := os.ReadFile(disk)
	for _, format := range formats {
		t.Run(format, func(t *testing.T) {
			file := filepath.Join(dir, "disk."+format)
			_, err := newWriter(t).Write(context.Background(), proto.WriteImageArgs{URLs: []string{srv.URL + "/disk." + format},
				DiskFormat: format, OSHashAlgo: "sha256", OSHashValue: sha256File(t, file), Target: dev}, nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(dev)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got[:len(want)], want) {
				t.Errorf("device differs from the image")
			}
			if !bytes.Equal(got[len(want):], bytes.Repeat([]byte{0xee}, len(got)-len(want))) {
				t.Errorf("bytes past the image changed")
			}
		})
	}
	t.Run("too-large", func(t *testing.T) {
		big := filepath.Join(dir, "big.raw")
		genDisk(t, big, 65*mib, 5)
		_, err := newWriter(t).Write(context.Background(), proto.WriteImageArgs{URLs: []string{srv.URL + "/big.raw"},
			DiskFormat: "raw", OSHashAlgo: "sha256", OSHashValue: sha256File(t, big), Target: dev}, nil)
		if proto.CodeOf(err) != proto.CodeFailed || !strings.Contains(err.Error(), "does not fit") {
			t.Fatalf("Write = %v, want a failure saying the image does not fit", err)
		}
	})
}
