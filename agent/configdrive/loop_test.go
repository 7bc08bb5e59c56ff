package configdrive

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestLoopWrite writes a config drive through a loop device (O_EXCL, the block device's
// size and sector size) and reads it back from the backing file. Loop devices need root: it
// runs when FERRUM_LOOPDEV=1 (make test sets it).
func TestLoopWrite(t *testing.T) {
	if os.Getenv("FERRUM_LOOPDEV") == "" {
		t.Skip("needs root and loop devices; set FERRUM_LOOPDEV=1 (make test does)")
	}
	path := gptImage(t, 100*mib, 200*mib)
	out, err := exec.Command("losetup", "--find", "--show", "--partscan", path).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup: %v: %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "--detach", dev).Run() })
	res, err := newWriter(t).Write(context.Background(), args(dev, content))
	if err != nil {
		t.Fatal(err)
	}
	if res.PartitionNumber != 3 || res.Partition != dev+"p3" || res.Offset != 200*mib-65*mib {
		t.Errorf("Write(%s) = %+v", dev, res)
	}
	fsys := readISO(t, path, res.Offset, res.Size)
	if !strings.Contains(string(isoFile(t, fsys, "/openstack/latest/meta_data.json")), "node-1") {
		t.Error("config drive not in the backing file")
	}
}
