package inspect

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ferrumhq/ferrum/shared/proto"
)

// capture runs testdata/capture.sh on root into a new directory.
func capture(t *testing.T, root string) string {
	t.Helper()
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skipf("no sh to run capture.sh: %v", err)
	}
	dest := t.TempDir()
	out, err := exec.Command("sh", "testdata/capture.sh", dest, root).CombinedOutput()
	if err != nil {
		t.Fatalf("capture.sh: %v\n%s", err, out)
	}
	return dest
}

func noAddrs(string) (string, string) { return "", "" }

func noBMC(context.Context, string) (BMCAddress, error) { return BMCAddress{}, os.ErrNotExist }

// inventoryOf inspects root without addresses or BMC and without the warnings, whose paths
// name the root.
func inventoryOf(t *testing.T, root string) proto.Inventory {
	t.Helper()
	inv, err := newInspector(t, Config{Root: root, Addrs: noAddrs, BMC: noBMC}).Inventory(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	inv.Ferrum.Warnings = nil
	return inv
}

// A capture of a fixture tree inspects the same as the tree: capture.sh copies everything
// inspection reads, for every kind of disk and NIC in the fixtures.
func TestCaptureFixtures(t *testing.T) {
	for _, name := range []string{"qemu-q35-ovmf", "arm64-bios"} {
		t.Run(name, func(t *testing.T) {
			root, err := filepath.Abs(filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(inventoryOf(t, root), inventoryOf(t, capture(t, root))); diff != "" {
				t.Errorf("inventory of the capture differs (-tree +capture):\n%s", diff)
			}
		})
	}
}

// A capture of the machine the tests run on inspects the same as the machine.
func TestCaptureHost(t *testing.T) {
	for _, p := range []string{"/proc/cpuinfo", "/sys/block", "/sys/class/net"} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("not a Linux machine with sysfs and procfs (%v)", err)
		}
	}
	if diff := cmp.Diff(inventoryOf(t, "/"), inventoryOf(t, capture(t, ""))); diff != "" {
		t.Errorf("inventory of the capture differs (-host +capture):\n%s", diff)
	}
}
