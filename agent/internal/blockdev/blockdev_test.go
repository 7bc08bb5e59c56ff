package blockdev

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const gib = 1 << 30

// testdata/qemu is written by testdata/make-disks.sh.
func TestListQEMU(t *testing.T) {
	got, err := List("testdata/qemu")
	if err != nil {
		t.Fatal(err)
	}
	pre := "sys/devices/pci0000:00/"
	want := []Disk{
		{Name: "/dev/md0", Size: 12 * gib, Type: "raid1", LogicalSectorSize: 512, PhysicalSectorSize: 512,
			SysPath: "sys/devices/virtual/block/md0"},
		{Name: "/dev/nvme0n1", Size: 16 * gib, Type: "disk", Model: "QEMU NVMe Ctrl", Serial: "NVME-SERIAL-0",
			WWN:              "nvme.1b36-4e564d452d53455249414c2d30-51454d55204e564d65204374726c-00000001",
			WWNWithExtension: "nvme.1b36-4e564d452d53455249414c2d30-51454d55204e564d65204374726c-00000001",
			ByPath:           "/dev/disk/by-path/pci-0000:00:04.0-nvme-1", Tran: "nvme",
			LogicalSectorSize: 512, PhysicalSectorSize: 512, SysPath: pre + "0000:00:04.0/nvme/nvme0/nvme0n1"},
		{Name: "/dev/sda", Size: 10 * gib, Type: "disk", Model: "SSD-X", Vendor: "ACME", Serial: "SCSI-SERIAL-0",
			WWN: "0x5000c500a1b2c3d4", WWNWithExtension: "0x5000c500a1b2c3d4", HCTL: "0:0:0:0",
			ByPath: "/dev/disk/by-path/pci-0000:00:03.0-scsi-0:0:0:0", LogicalSectorSize: 512, PhysicalSectorSize: 512,
			SysPath: pre + "0000:00:03.0/virtio2/host0/target0:0:0/0:0:0:0/block/sda"},
		{Name: "/dev/sdb", Size: 2 * gib, Type: "disk", Rotational: true, Model: "QEMU HARDDISK", Vendor: "QEMU",
			Serial: "SCSI-SERIAL-1", WWN: "0x600a0b8000123456", WWNWithExtension: "0x600a0b800012345600000000deadbeef",
			WWNVendorExtension: "0x00000000deadbeef", HCTL: "0:0:1:0",
			ByPath: "/dev/disk/by-path/pci-0000:00:03.0-scsi-0:0:1:0", LogicalSectorSize: 512, PhysicalSectorSize: 4096,
			SysPath: pre + "0000:00:03.0/virtio2/host0/target0:0:1/0:0:1:0/block/sdb"},
		{Name: "/dev/sdc", Size: 8 * gib, Type: "disk", Rotational: true, Model: "DataTraveler 3.0", Vendor: "Kingston",
			HCTL: "2:0:0:0", ByPath: "/dev/disk/by-path/pci-0000:00:1d.0-usb-0:1:1.0-scsi-0:0:0:0", Tran: "usb",
			Removable: true, LogicalSectorSize: 512, PhysicalSectorSize: 512,
			SysPath: pre + "0000:00:1d.0/usb2/2-1/2-1:1.0/host2/target2:0:0/2:0:0:0/block/sdc"},
		{Name: "/dev/sdd", Size: 4 * gib, Type: "disk", Rotational: true, Model: "QEMU HARDDISK", Vendor: "ATA",
			Serial: "QM00001", HCTL: "3:0:0:0", ByPath: "/dev/disk/by-path/pci-0000:00:1f.2-ata-1", Tran: "sata",
			ReadOnly: true, LogicalSectorSize: 512, PhysicalSectorSize: 512,
			SysPath: pre + "0000:00:1f.2/ata1/host3/target3:0:0/3:0:0:0/block/sdd"},
		{Name: "/dev/vda", Size: 20 * gib, Type: "disk", Rotational: true, Vendor: "0x1af4", Serial: "VDA-SERIAL-0",
			ByPath: "/dev/disk/by-path/pci-0000:00:02.0", LogicalSectorSize: 512, PhysicalSectorSize: 512,
			SysPath: pre + "0000:00:02.0/virtio1/block/vda"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("List(testdata/qemu) mismatch (-want +got):\n%s", diff)
	}
}

// udev's links win over the computed path when they exist.
func TestListByPathFromUdev(t *testing.T) {
	root := t.TempDir()
	copyTree(t, "testdata/qemu", root)
	dir := filepath.Join(root, "dev", "disk", "by-path")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{
		"virtio-pci-0000:00:02.0":       "../../vda",
		"pci-0000:00:02.0":              "../../vda",
		"pci-0000:00:02.0-part1":        "../../vda1",
		"pci-0000:00:03.0-scsi-0:0:0:7": "../../sda",
	} {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	disks, err := List(root)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, d := range disks {
		got[d.KName()] = d.ByPath
	}
	for k, want := range map[string]string{
		"vda": "/dev/disk/by-path/pci-0000:00:02.0",
		"sda": "/dev/disk/by-path/pci-0000:00:03.0-scsi-0:0:0:7",
		"sdb": "/dev/disk/by-path/pci-0000:00:03.0-scsi-0:0:1:0", // computed
	} {
		if got[k] != want {
			t.Errorf("%s: ByPath = %q, want %q", k, got[k], want)
		}
	}
}

func TestGet(t *testing.T) {
	tests := []struct {
		name, dev string
		want      string // Name, or "" for an error
	}{
		{"by-node", "/dev/sda", "/dev/sda"},
		{"by-kname", "nvme0n1", "/dev/nvme0n1"},
		{"loop-refused", "/dev/loop0", ""},
		{"empty-md-refused", "md1", ""},
		{"missing", "/dev/sdz", ""},
		{"traversal", "/dev/../sda", ""},
		{"empty", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Get("testdata/qemu", tc.dev)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("Get(%q) = %+v, want an error", tc.dev, d)
				}
				return
			}
			if err != nil || d.Name != tc.want {
				t.Fatalf("Get(%q) = %q, %v, want %q", tc.dev, d.Name, err, tc.want)
			}
		})
	}
}

func TestListErrors(t *testing.T) {
	if _, err := List(t.TempDir()); err == nil {
		t.Error("List(empty dir) succeeded, want an error for the missing /sys/block")
	}
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "sys/block/sda/size"), "lots\n")
	if _, err := List(root); err == nil {
		t.Error("List with a bad size succeeded, want an error")
	}
}

// On this machine List must succeed; whatever disks it has must have a size and a name.
func TestListHost(t *testing.T) {
	if _, err := os.Stat("/sys/block"); err != nil {
		t.Skipf("no /sys/block on this machine: %v", err)
	}
	disks, err := List("/")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range disks {
		if d.Size <= 0 || d.Name == "" {
			t.Errorf("host disk %+v has no name or size", d)
		}
	}
	t.Logf("%d disks", len(disks))
}

func TestParseVPD80(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want string
		ok   bool
	}{
		{"padded", []byte("\x00\x80\x00\x0aSERIAL    "), "SERIAL", true},
		{"empty", []byte("\x00\x80\x00\x00"), "", true},
		{"short-header", []byte("\x00\x80\x00"), "", false},
		{"wrong-page", []byte("\x00\x83\x00\x01A"), "", false},
		{"length-past-end", []byte("\x00\x80\x00\x10ABC"), "", false},
		{"binary", []byte("\x00\x80\x00\x02A\x01"), "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseVPD80(tc.in)
			if (err == nil) != tc.ok || got != tc.want {
				t.Errorf("ParseVPD80(%q) = %q, %v, want %q (ok %v)", tc.in, got, err, tc.want, tc.ok)
			}
		})
	}
}

func TestParseWWID(t *testing.T) {
	tests := []struct {
		in, wwn, ext, vendor string
	}{
		{"naa.5000c500a1b2c3d4", "0x5000c500a1b2c3d4", "0x5000c500a1b2c3d4", ""},
		{"NAA.5000C500A1B2C3D4\n", "0x5000c500a1b2c3d4", "0x5000c500a1b2c3d4", ""},
		{"naa.600a0b800012345600000000deadbeef", "0x600a0b8000123456", "0x600a0b800012345600000000deadbeef", "0x00000000deadbeef"},
		{"t10.ATA     QEMU HARDDISK", "", "", ""},
		{"eui.0011223344556677", "", "", ""},
		{"naa.xyz", "", "", ""},
		{"naa.5000", "", "", ""},
		{"", "", "", ""},
	}
	for _, tc := range tests {
		w, e, v := ParseWWID(tc.in)
		if w != tc.wwn || e != tc.ext || v != tc.vendor {
			t.Errorf("ParseWWID(%q) = %q, %q, %q, want %q, %q, %q", tc.in, w, e, v, tc.wwn, tc.ext, tc.vendor)
		}
	}
}

func FuzzParseVPD80(f *testing.F) {
	for _, s := range []string{"\x00\x80\x00\x0dSCSI-SERIAL-0", "\x00\x80\x00\x00", "\x00\x80\xff\xff", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseVPD80(b)
		if err != nil && s != "" {
			t.Fatalf("ParseVPD80 returned %q with error %v", s, err)
		}
		if len(s) > len(b) {
			t.Fatalf("serial %q longer than its page", s)
		}
	})
}

func FuzzParseWWID(f *testing.F) {
	for _, s := range []string{"naa.5000c500a1b2c3d4", "naa.600a0b800012345600000000deadbeef", "t10.ATA x", "naa."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		w, e, v := ParseWWID(s)
		if w == "" && (e != "" || v != "") {
			t.Fatalf("ParseWWID(%q) = %q, %q, %q: extension without a WWN", s, w, e, v)
		}
		if w != "" && len(w) != 18 {
			t.Fatalf("ParseWWID(%q) WWN %q is not 0x + 16 hex digits", s, w)
		}
	})
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// copyTree copies a fixture tree, keeping its symlinks.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
}
