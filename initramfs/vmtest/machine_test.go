package vmtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
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

// machineDisks: two 1 GiB virtio disks for RAID 1 (create_raid keeps room for an ESP), two scsi-hd (an SSD with a
// WWN, a spinning disk), an NVMe disk and a config drive, plus SMBIOS identity.
var machineDisks = []Disk{
	{Size: 1024 * mib, Bus: Virtio, Serial: "RAID-A"},
	{Size: 1024 * mib, Bus: Virtio, Serial: "RAID-B"},
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

	img := mbrImage(8 * mib)
	sum := sha256.Sum256(img)
	writeArgs := proto.WriteImageArgs{ID: "vmtest", URLs: []string{serveImage(t, img)}, DiskFormat: proto.DiskFormatRaw,
		OSHashAlgo: proto.HashSHA256, OSHashValue: hex.EncodeToString(sum[:]), ImageSize: int64(len(img)), Target: "@T@"}
	writeJSON, _ := json.Marshal(writeArgs)
	before, after, _ := strings.Cut(string(writeJSON), "@T@")

	cdMeta := map[string]any{"uuid": "6c9e1f32-3b52-4b0e-9c1d-1f2e3d4c5b6a", "name": "vmtest"}
	cdArgs, _ := json.Marshal(map[string]any{"device": "@T@", "configdrive": map[string]any{"meta_data": cdMeta}})
	cdBefore, cdAfter, _ := strings.Cut(string(cdArgs), "@T@")
	// SCSI disks are probed in parallel: sdX names vary from boot to boot, so find the SSD by WWN.
	const findSSD = `for d in /sys/block/sd*; do if [ "$(cat $d/device/wwid)" = naa.5000c500a1b2c3d4 ]; then t=/dev/${d##*/}; fi; done` + "\n"
	steps := []Step{
		Exec("status", "get_status", nil),
		Exec("inventory", proto.CmdInspect, nil),
		{Name: "inventory_cmd", Shell: "ferrum-agent inventory"}, // the image builders' subcommand
		{Name: "blocks", Shell: blockAttrs},
		{Name: "dmi", Shell: `cd /sys/class/dmi/id; for f in sys_vendor product_name product_version product_serial product_uuid board_vendor board_serial chassis_serial chassis_asset_tag bios_vendor bios_version; do echo "$f=$(cat $f)"; done`},
		{Name: "modules", Shell: `cat /proc/modules`},
		Exec("create_raid", proto.CmdCreateRAID, json.RawMessage(`{"target_raid_config":{"logical_disks":[`+
			`{"raid_level":"1","size_gb":"MAX","controller":"software","is_root_volume":true}]},"devices":["/dev/vda","/dev/vdb"]}`)),
		Exec("get_raid", proto.CmdGetRAID, nil),
		{Name: "mdstat", Shell: `cat /proc/mdstat`},
		{Name: "dhcp", Shell: `dhclient -ipv6=false -timeout 20 2>&1; ip addr show eth0`},
		{Name: "write_image", Shell: findSSD + `ferrum-agent exec write_image ` + Quote(before) + `"$t"` + Quote(after)},
		{Name: "write_configdrive", Shell: findSSD + `ferrum-agent exec write_configdrive ` + Quote(cdBefore) + `"$t"` + Quote(cdAfter)},
		{Name: "read_configdrive", Shell: `mkdir -p /mnt/cd; for p in /sys/class/block/sd*[0-9]; do n=${p##*/}
if mount -r -t iso9660 /dev/$n /mnt/cd 2>/dev/null; then echo $n; cat /mnt/cd/openstack/latest/meta_data.json; echo; umount /mnt/cd; fi; done`},
		{Name: "iso", Shell: `mkdir -p /mnt/cfg && mount -r -t iso9660 /dev/vdc /mnt/cfg && cat /mnt/cfg/openstack/latest/meta_data.json`},
	}
	v := start(t, Config{Dir: dir, Disks: disks, SMBIOS: machineSMBIOS, Script: steps})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
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
			"RAID-A":               virtio(1024*mib, "RAID-A"),
			"RAID-B":               virtio(1024*mib, "RAID-B"),
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

	t.Run("inventory", func(t *testing.T) {
		var inv proto.Inventory
		if err := res["inventory"].Decode(&inv); err != nil {
			t.Fatal(err)
		}
		checkInventory(t, inv, isoSize(t, iso))
		var local proto.Inventory
		if err := json.Unmarshal([]byte(res["inventory_cmd"].Output), &local); err != nil {
			t.Fatalf("ferrum-agent inventory printed %q: %v", res["inventory_cmd"].Output, err)
		}
		if len(local.Disks) != len(inv.Disks) || local.SystemVendor != inv.SystemVendor {
			t.Errorf("ferrum-agent inventory = %d disks, %+v; inspect = %d disks, %+v",
				len(local.Disks), local.SystemVendor, len(inv.Disks), inv.SystemVendor)
		}
	})

	t.Run("raid1", func(t *testing.T) {
		var got struct {
			Arrays []proto.RAIDArray `json:"arrays"`
		}
		if err := res["create_raid"].Decode(&json.RawMessage{}); err != nil {
			t.Fatal(err)
		}
		if err := res["get_raid"].Decode(&got); err != nil {
			t.Fatal(err)
		}
		arrays := got.Arrays
		var r1 []proto.RAIDArray
		for _, a := range arrays {
			if a.RAIDLevel == "1" {
				r1 = append(r1, a)
			}
		}
		if len(r1) != 1 || len(r1[0].Members) != 2 {
			t.Errorf("get_raid after create_raid = %+v, want one RAID 1 with two members", arrays)
		}
		if !strings.Contains(res["mdstat"].Output, "active raid1") || !strings.Contains(res["mdstat"].Output, "[UU]") {
			t.Errorf("/proc/mdstat has no raid1:\n%s", res["mdstat"].Output)
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
		// write_configdrive ran after write_image and added its partition to the MBR.
		copy(got[462:510], img[462:510])
		if !bytes.Equal(got, img) {
			t.Errorf("disk2.raw after the VM stopped differs from the image (sha256 %x, want %x)", sha256.Sum256(got), sum)
		}
	})

	t.Run("configdrive", func(t *testing.T) {
		var cd proto.ConfigDriveResult
		if err := res["write_configdrive"].Decode(&cd); err != nil {
			t.Fatal(err)
		}
		// The partition holds an ISO 9660 file system labelled config-2 (volume id at 0x8028).
		if label := readAt(t, filepath.Join(dir, "disk2.raw"), cd.Offset+0x8028, 8); string(label) != "config-2" {
			t.Errorf("volume id at the config drive partition (offset %d) = %q, want config-2", cd.Offset, label)
		}
		// And the guest mounts it and reads the metadata back.
		out := strings.Fields(res["read_configdrive"].Output)
		if len(out) != 2 || "/dev/"+out[0] != cd.Partition {
			t.Fatalf("iso9660 partitions found in the VM: %q, want only %s (result %+v)", res["read_configdrive"].Output, cd.Partition, cd)
		}
		var got map[string]any
		if err := json.Unmarshal([]byte(out[1]), &got); err != nil {
			t.Fatalf("meta_data.json: %v", err)
		}
		for k, want := range cdMeta {
			if got[k] != want {
				t.Errorf("meta_data.json %s = %v, want %v (all: %v)", k, got[k], want, got)
			}
		}
		if got := strings.TrimSpace(res["iso"].Output); got != meta {
			t.Errorf("meta_data.json on the ISO disk = %q, want %q", got, meta)
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

// mbrImage is a whole-disk image of size bytes: an MBR with one Linux partition from 1 MiB to
// size-1 MiB, random bytes everywhere else (no zero runs a writer could skip).
func mbrImage(size int) []byte {
	img := make([]byte, size)
	rand.Read(img)
	clear(img[446:510])
	e := img[446:462]
	e[4] = 0x83
	binary.LittleEndian.PutUint32(e[8:], 2048)
	binary.LittleEndian.PutUint32(e[12:], uint32(size/512-4096))
	img[510], img[511] = 0x55, 0xaa
	return img
}

func isoSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// checkInventory compares inspect's inventory with the machine's configuration.
func checkInventory(t *testing.T, inv proto.Inventory, isoBytes int64) {
	t.Helper()
	type disk struct {
		Size       int64
		Rotational bool
		WWN        string
		Vendor     string
		Model      string
	}
	got := map[string]disk{}
	for _, d := range inv.Disks {
		got[d.Serial] = disk{d.Size, d.Rotational, d.WWN, d.Vendor, d.Model}
	}
	if d, ok := got["NVME-0"]; ok { // QEMU's NVMe identity is fixed; its WWN format is the kernel's
		d.WWN = ""
		got["NVME-0"] = d
	}
	want := map[string]disk{
		"RAID-A": {1024 * mib, true, "", "0x1af4", ""}, "RAID-B": {1024 * mib, true, "", "0x1af4", ""},
		"CFG":    {isoBytes, true, "", "0x1af4", ""}, // virtio: the PCI vendor, as IPA reports it
		"SSD-0":  {96 * mib, false, "0x5000c500a1b2c3d4", "ACME", "SSD-X"},
		"HDD-1":  {128 * mib, true, "0x5000c500deadbeef", "ACME", "HDD-Y"},
		"NVME-0": {80 * mib, false, "", got["NVME-0"].Vendor, "QEMU NVMe Ctrl"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("inventory disks by serial (-want +got):\n%s\nall: %+v", diff, inv.Disks)
	}
	sv := inv.SystemVendor
	if sv.Manufacturer != "Acme" || sv.ProductName != "BM-1000" || sv.SerialNumber != "SYS-SERIAL-0001" ||
		sv.Firmware.Vendor != "FerrumBIOS" || sv.Firmware.Version != "1.2.3" {
		t.Errorf("inventory system_vendor = %+v, want the SMBIOS the VM was given", sv)
	}
	if inv.Ferrum == nil || inv.Ferrum.SystemUUID != "6c9e1f32-3b52-4b0e-9c1d-1f2e3d4c5b6a" {
		t.Errorf("inventory ferrum extra = %+v, want the SMBIOS system UUID", inv.Ferrum)
	}
	if inv.CPU.Count != 2 || inv.Memory.PhysicalMB < 448 || inv.Memory.PhysicalMB > 576 {
		t.Errorf("inventory cpu count %d, physical_mb %d; want 2 and about 512", inv.CPU.Count, inv.Memory.PhysicalMB)
	}
	macs := map[string]bool{}
	for _, i := range inv.Interfaces {
		macs[i.MACAddress] = true
	}
	if !macs["52:54:00:12:34:56"] {
		t.Errorf("inventory interfaces = %+v, want the VM's NIC 52:54:00:12:34:56", inv.Interfaces)
	}
}
