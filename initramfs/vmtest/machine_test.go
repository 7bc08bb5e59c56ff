package vmtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ferrumhq/ferrum/shared/proto"
)

const mib = 1 << 20

// machine is the VM most tests share: two virtio disks for RAID 1, two scsi-hd (an SSD with a
// WWN, a spinning disk), an NVMe disk and a config drive, plus SMBIOS identity.
var machineDisks = []Disk{
	{Size: 64 * mib, Bus: Virtio, Serial: "RAID-A"},
	{Size: 64 * mib, Bus: Virtio, Serial: "RAID-B"},
	{Size: 96 * mib, Bus: SCSI, Serial: "SSD-0", WWN: 0x5000c500a1b2c3d4, RotationRate: 1, Vendor: "ACME", Product: "SSD-X"},
	{Size: 128 * mib, Bus: SCSI, Serial: "HDD-1", WWN: 0x5000c500deadbeef, RotationRate: 7200, Vendor: "ACME", Product: "HDD-Y"},
	{Size: 80 * mib, Bus: NVMe, Serial: "NVME-0"},
	// disk 5: the config drive ISO (made by the test)
}

var machineSMBIOS = []string{
	"type=0,vendor=FerrumBIOS,version=1.2.3",
	"type=1,manufacturer=Acme,product=BM-1000,version=rev2,serial=SYS-SERIAL-0001,uuid=6c9e1f32-3b52-4b0e-9c1d-1f2e3d4c5b6a,sku=SKU42,family=bm",
	"type=2,manufacturer=Acme,product=Board-1,serial=BOARD-SERIAL-7",
	"type=3,manufacturer=Acme,serial=CHASSIS-9,asset=ASSET-1",
}

// configDrive makes an ISO 9660 config drive (label config-2) with OpenStack metadata.
func configDrive(t *testing.T, dir string) (string, string) {
	t.Helper()
	iso, err := exec.LookPath("genisoimage")
	if err != nil {
		t.Fatalf("%v (apt-get install genisoimage; test-setup.sh does)", err)
	}
	src := filepath.Join(dir, "cfg")
	meta := `{"uuid":"6c9e1f32-3b52-4b0e-9c1d-1f2e3d4c5b6a","hostname":"node-0"}`
	if err := os.MkdirAll(filepath.Join(src, "openstack", "latest"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "openstack", "latest", "meta_data.json"), []byte(meta), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "configdrive.iso")
	if b, err := exec.Command(iso, "-quiet", "-V", "config-2", "-r", "-J", "-o", out, src).CombinedOutput(); err != nil {
		t.Fatalf("genisoimage: %v: %s", err, b)
	}
	return out, meta
}

// serveImage serves data on loopback, which the guest reaches as 10.0.2.2.
func serveImage(t *testing.T, data []byte) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "disk.raw", time.Time{}, bytes.NewReader(data))
	}))
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	return "http://10.0.2.2:" + port + "/disk.raw"
}

// TestMachine boots once and checks what the ramdisk sees and does: the disks and SMBIOS fields
// the VM was given, the agent's status, a RAID 1 over the two virtio disks, an image written
// byte-exact over HTTP, and the config drive.
func TestMachine(t *testing.T) {
	needVM(t)
	dir := t.TempDir()
	iso, meta := configDrive(t, dir)
	disks := append(append([]Disk(nil), machineDisks...), Disk{File: iso, Bus: Virtio, Serial: "CFG"})

	img := make([]byte, 8*mib+4096) // not a multiple of a MiB, random (no zero runs to skip)
	rand.Read(img)
	sum := sha256.Sum256(img)
	writeArgs := proto.WriteImageArgs{ID: "vmtest", URLs: []string{serveImage(t, img)}, DiskFormat: proto.DiskFormatRaw,
		OSHashAlgo: proto.HashSHA256, OSHashValue: hex.EncodeToString(sum[:]), ImageSize: int64(len(img)), Target: "@T@"}
	writeJSON, _ := json.Marshal(writeArgs)
	before, after, _ := strings.Cut(string(writeJSON), "@T@")

	steps := []Step{
		Exec("status", "get_status", nil),
		{Name: "blocks", Shell: blockAttrs},
		{Name: "dmi", Shell: `cd /sys/class/dmi/id; for f in sys_vendor product_name product_version product_serial product_uuid board_vendor board_serial chassis_serial chassis_asset_tag bios_vendor bios_version; do echo "$f=$(cat $f)"; done`},
		{Name: "modules", Shell: `cat /proc/modules`},
		{Name: "raid1", Shell: `mdadm --create /dev/md0 --run --level=1 --raid-devices=2 --metadata=1.2 /dev/vda /dev/vdb 2>&1 && cat /proc/mdstat && mdadm --detail --export /dev/md0`},
		{Name: "dhcp", Shell: `dhclient -ipv6=false -timeout 20 2>&1; ip addr show eth0`},
		// SCSI disks are probed in parallel: sdX names vary from boot to boot, so find the SSD by WWN.
		{Name: "write_image", Shell: `for d in /sys/block/sd*; do if [ "$(cat $d/device/wwid)" = naa.5000c500a1b2c3d4 ]; then t=/dev/${d##*/}; fi; done
ferrum-agent exec write_image ` + Quote(before) + `"$t"` + Quote(after)},
		{Name: "configdrive", Shell: `mkdir -p /mnt/cfg && mount -r -t iso9660 /dev/vdc /mnt/cfg && cat /mnt/cfg/openstack/latest/meta_data.json`},
	}
	v := start(t, Config{Dir: dir, Disks: disks, SMBIOS: machineSMBIOS, Script: steps})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	res, err := v.Results(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Wait(ctx); err != nil {
		t.Fatalf("QEMU: %v", err)
	}
	for _, s := range steps {
		r, ok := res[s.Name]
		if !ok {
			t.Errorf("step %s did not finish", s.Name)
			continue
		}
		t.Logf("step %s rc=%d at %.1fs:\n%s", s.Name, r.RC, r.At.Seconds(), r.Output)
	}

	t.Run("status", func(t *testing.T) {
		var st proto.Status
		if err := res["status"].Decode(&st); err != nil {
			t.Fatal(err)
		}
		if st.AgentVersion == "" || st.Hostname == "" {
			t.Errorf("get_status in the VM = %+v, want a version and a hostname", st)
		}
	})

	t.Run("disks", func(t *testing.T) {
		// Keyed by serial (WWN for SCSI): SCSI names vary between boots.
		got := map[string]map[string]string{}
		for name, attrs := range parseBlockAttrs(res["blocks"].Output) {
			key := attrs["serial"] + attrs["device/serial"] + attrs["device/wwid"]
			attrs["kind"] = strings.TrimRight(name, "abcdefghijklmnopqrstuvwxyz0123456789")
			for _, k := range []string{"vd", "sd", "nvme", "md"} {
				if strings.HasPrefix(name, k) {
					attrs["kind"] = k
				}
			}
			got[key] = attrs
		}
		delete(got, "") // md0
		sectors := func(n int64) string { return strconv.FormatInt(n/512, 10) }
		isoSize, err := os.Stat(iso)
		if err != nil {
			t.Fatal(err)
		}
		virtio := func(size int64, serial string) map[string]string {
			return map[string]string{"kind": "vd", "size": sectors(size), "queue/rotational": "1", "serial": serial, "device/vendor": "0x1af4"}
		}
		scsi := func(size int64, rot, wwid, vendor, model string) map[string]string {
			return map[string]string{"kind": "sd", "size": sectors(size), "queue/rotational": rot, "device/wwid": wwid,
				"device/vendor": vendor, "device/model": model}
		}
		want := map[string]map[string]string{
			"RAID-A":               virtio(64*mib, "RAID-A"),
			"RAID-B":               virtio(64*mib, "RAID-B"),
			"CFG":                  virtio(isoSize.Size(), "CFG"),
			"naa.5000c500a1b2c3d4": scsi(96*mib, "0", "naa.5000c500a1b2c3d4", "ACME", "SSD-X"),
			"naa.5000c500deadbeef": scsi(128*mib, "1", "naa.5000c500deadbeef", "ACME", "HDD-Y"),
			"NVME-0": {"kind": "nvme", "size": sectors(80 * mib), "queue/rotational": "0", "device/serial": "NVME-0",
				"device/model": "QEMU NVMe Ctrl", "wwid": "nvme.1b36-4e564d452d30-51454d55204e564d65204374726c-00000001"},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("/sys/block in the VM (-want +got):\n%s", diff)
		}
	})

	t.Run("smbios", func(t *testing.T) {
		got := map[string]string{}
		for _, l := range strings.Split(strings.TrimSpace(res["dmi"].Output), "\n") {
			k, val, _ := strings.Cut(l, "=")
			got[k] = val
		}
		want := map[string]string{"sys_vendor": "Acme", "product_name": "BM-1000", "product_version": "rev2",
			"product_serial": "SYS-SERIAL-0001", "product_uuid": "6c9e1f32-3b52-4b0e-9c1d-1f2e3d4c5b6a",
			"board_vendor": "Acme", "board_serial": "BOARD-SERIAL-7", "chassis_serial": "CHASSIS-9",
			"chassis_asset_tag": "ASSET-1", "bios_vendor": "FerrumBIOS", "bios_version": "1.2.3"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("/sys/class/dmi/id in the VM (-want +got):\n%s", diff)
		}
	})

	t.Run("raid1", func(t *testing.T) {
		r := res["raid1"]
		if r.RC != 0 || !strings.Contains(r.Output, "MD_LEVEL=raid1") || !strings.Contains(r.Output, "MD_DEVICES=2") {
			t.Fatalf("mdadm --create in the VM: rc %d, output:\n%s", r.RC, r.Output)
		}
		// An md 1.2 superblock sits 4 KiB into each member.
		for i := range 2 {
			b := readAt(t, filepath.Join(dir, fmt.Sprintf("disk%d.raw", i)), 4096, 4)
			if !bytes.Equal(b, []byte{0xfc, 0x4e, 0x2b, 0xa9}) {
				t.Errorf("disk%d.raw: no md superblock magic at 4096 (%x)", i, b)
			}
		}
	})

	t.Run("write_image", func(t *testing.T) {
		var wr proto.WriteImageResult
		if err := res["write_image"].Decode(&wr); err != nil {
			t.Fatalf("%v\ndhcp step:\n%s", err, res["dhcp"].Output)
		}
		if !strings.HasPrefix(wr.Target, "/dev/sd") || wr.OSHashValue != hex.EncodeToString(sum[:]) || wr.DownloadBytes != int64(len(img)) {
			t.Errorf("write_image result = %+v", wr)
		}
		got := readAt(t, filepath.Join(dir, "disk2.raw"), 0, len(img))
		if !bytes.Equal(got, img) {
			t.Errorf("disk2.raw after the VM stopped differs from the image (sha256 %x, want %x)", sha256.Sum256(got), sum)
		}
	})

	t.Run("configdrive", func(t *testing.T) {
		if got := strings.TrimSpace(res["configdrive"].Output); got != meta {
			t.Errorf("meta_data.json read from the config drive in the VM = %q, want %q", got, meta)
		}
	})
}

func readAt(t *testing.T, path string, off int64, n int) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return b
}

// blockAttrs prints "disk attr=value" for the /sys/block attributes inventories use.
const blockAttrs = `for d in /sys/block/*; do
  for a in size queue/rotational serial wwid device/serial device/wwid device/vendor device/model; do
    if [ -f $d/$a ]; then echo "${d##*/} $a=$(cat $d/$a)"; fi
  done
done`

// parseBlockAttrs reads blockAttrs' output: disk → attribute → value (trimmed).
func parseBlockAttrs(out string) map[string]map[string]string {
	got := map[string]map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		disk, kv, ok := strings.Cut(l, " ")
		if !ok {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		if got[disk] == nil {
			got[disk] = map[string]string{}
		}
		got[disk][k] = strings.TrimSpace(v)
	}
	return got
}
