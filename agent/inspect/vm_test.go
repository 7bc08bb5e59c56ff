package inspect

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferrumhq/ferrum/initramfs/vmtest"
	"github.com/ferrumhq/ferrum/shared/proto"
)

// TestInventoryInQEMU boots the agent ramdisk (make initramfs) with virtio, scsi-hd and NVMe
// disks, OVMF and SMBIOS fields, runs inspect, resolve_root_device and `ferrum-agent
// inventory` in the guest, and checks the inventory against the VM's configuration.
func TestInventoryInQEMU(t *testing.T) {
	if os.Getenv("FERRUM_VMTEST") == "" {
		t.Skip("boots QEMU under TCG: set FERRUM_VMTEST=1 (make test does; initramfs/vmtest/test-setup.sh installs QEMU and builds the image)")
	}
	disks := []vmtest.Disk{
		{Size: 5 * gib, Bus: vmtest.Virtio, Serial: "VDA-SERIAL-0"},
		{Size: 6 * gib, Bus: vmtest.SCSI, Serial: "SSD-0", WWN: 0x5000c500a1b2c3d4, RotationRate: 1, Vendor: "ACME", Product: "SSD-X"},
		{Size: 7 * gib, Bus: vmtest.SCSI, Serial: "HDD-1", WWN: 0x5000c500deadbeef, RotationRate: 7200, Vendor: "ACME", Product: "HDD-Y"},
		{Size: 8 * gib, Bus: vmtest.NVMe, Serial: "NVME-0"},
	}
	steps := []vmtest.Step{
		vmtest.Exec("inspect", proto.CmdInspect, proto.InspectArgs{RootDeviceHints: map[string]any{"wwn": "0x5000C500DEADBEEF"}}),
		vmtest.Exec("resolve_default", proto.CmdResolveRootDevice, nil),
		vmtest.Exec("resolve_hints", proto.CmdResolveRootDevice,
			proto.ResolveRootDeviceArgs{RootDeviceHints: map[string]any{"rotational": false, "size": ">= 7"}}),
		vmtest.Exec("resolve_none", proto.CmdResolveRootDevice,
			proto.ResolveRootDeviceArgs{RootDeviceHints: map[string]any{"serial": "nope"}}),
		{Name: "inventory", Shell: "ferrum-agent inventory"},
		// a short last step: output still in the UART when the guest powers off is lost
		{Name: "end", Shell: "echo end"},
	}
	cfg := vmtest.Config{Dir: t.TempDir(), Disks: disks, UEFI: true, MemoryMiB: 512, CPUs: 2, Script: steps,
		SMBIOS: []string{
			"type=0,vendor=BMTest,version=1.2.3",
			"type=1,manufacturer=Acme,product=BM-1000,version=rev2,serial=SYS-SERIAL-0001,uuid=6c9e1f32-3b52-4b0e-9c1d-1f2e3d4c5b6a",
		},
		Log: func(l string) { t.Log(l) }}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	v, err := vmtest.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer v.Close()
	res, err := v.Results(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range steps {
		if r, ok := res[s.Name]; ok {
			t.Logf("step %s rc=%d at %.1fs:\n%s", s.Name, r.RC, r.At.Seconds(), r.Output)
		}
	}

	var inv proto.Inventory
	if err := res["inspect"].Decode(&inv); err != nil {
		t.Fatal(err)
	}
	bySerial := map[string]proto.Disk{}
	for _, d := range inv.Disks {
		bySerial[d.Serial] = d
	}
	checks := []struct {
		serial           string
		size             int64
		rotational       bool
		model, vendor    string
		wwn, namePrefix  string
		byPathHasSCSI    bool
		wwnPrefixIsWhole bool
	}{
		{"VDA-SERIAL-0", 5 * gib, true, "", "0x1af4", "", "/dev/vd", false, true},
		{"SSD-0", 6 * gib, false, "SSD-X", "ACME", "0x5000c500a1b2c3d4", "/dev/sd", true, true},
		{"HDD-1", 7 * gib, true, "HDD-Y", "ACME", "0x5000c500deadbeef", "/dev/sd", true, true},
		{"NVME-0", 8 * gib, false, "QEMU NVMe Ctrl", "", "nvme.", "/dev/nvme", false, false},
	}
	for _, c := range checks {
		d, ok := bySerial[c.serial]
		if !ok {
			t.Errorf("no disk with serial %s in %+v", c.serial, inv.Disks)
			continue
		}
		wwnOK := d.WWN == c.wwn || (!c.wwnPrefixIsWhole && strings.HasPrefix(d.WWN, c.wwn))
		if d.Size != c.size || d.Rotational != c.rotational || d.Model != c.model || d.Vendor != c.vendor || !wwnOK ||
			!strings.HasPrefix(d.Name, c.namePrefix) || !strings.HasPrefix(d.ByPath, "/dev/disk/by-path/pci-") ||
			strings.Contains(d.ByPath, "-scsi-") != c.byPathHasSCSI || (c.byPathHasSCSI && d.HCTL == "") {
			t.Errorf("disk %s = %+v, want size %d rotational %t model %q vendor %q wwn %q", c.serial, d, c.size, c.rotational, c.model, c.vendor, c.wwn)
		}
	}
	if inv.CPU.Count != 2 || inv.CPU.Architecture != "x86_64" || len(inv.CPU.Flags) == 0 {
		t.Errorf("cpu = %+v, want 2 x86_64 CPUs with flags", inv.CPU)
	}
	if inv.Memory.PhysicalMB != 512 || inv.Memory.Total <= 0 || inv.Memory.Total > 512<<20 {
		t.Errorf("memory = %+v, want 512 MiB installed", inv.Memory)
	}
	if want := (proto.SystemVendor{ProductName: "BM-1000", SerialNumber: "SYS-SERIAL-0001", Manufacturer: "Acme"}); inv.SystemVendor.ProductName != want.ProductName ||
		inv.SystemVendor.SerialNumber != want.SerialNumber || inv.SystemVendor.Manufacturer != want.Manufacturer || inv.SystemVendor.Firmware.Vendor == "" {
		t.Errorf("system_vendor = %+v, want %+v and a firmware vendor", inv.SystemVendor, want)
	}
	if inv.Boot.CurrentBootMode != proto.BootModeUEFI || inv.Ferrum.SystemUUID != "6c9e1f32-3b52-4b0e-9c1d-1f2e3d4c5b6a" {
		t.Errorf("boot %+v, uuid %q; want uefi and the SMBIOS UUID", inv.Boot, inv.Ferrum.SystemUUID)
	}
	if !slices.ContainsFunc(inv.Interfaces, func(i proto.Interface) bool {
		return i.MACAddress == "52:54:00:12:34:56" && i.Driver == "virtio_net" && i.PCIAddress != ""
	}) {
		t.Errorf("interfaces = %+v, want the VM's virtio NIC 52:54:00:12:34:56", inv.Interfaces)
	}
	if inv.BMCAddress != "" {
		t.Errorf("bmc_address = %q on a VM without IPMI", inv.BMCAddress)
	}
	if rd := inv.Ferrum.RootDisk; rd == nil || rd.Disk.Serial != "HDD-1" {
		t.Errorf("inspect root disk by wwn = %+v, want HDD-1", rd)
	}

	for step, serial := range map[string]string{"resolve_default": "VDA-SERIAL-0", "resolve_hints": "NVME-0"} {
		var rd proto.RootDevice
		if err := res[step].Decode(&rd); err != nil {
			t.Errorf("%s: %v", step, err)
			continue
		}
		if rd.Disk.Serial != serial || rd.Reason == "" {
			t.Errorf("%s = %+v, want the disk with serial %s", step, rd, serial)
		}
	}
	if r, err := res["resolve_none"].Result(); err != nil || r.Error == nil || r.Error.Code != proto.CodeFailed {
		t.Errorf("resolve_none = %+v, %v, want code %s", r, err, proto.CodeFailed)
	}

	var local proto.Inventory
	if err := json.Unmarshal([]byte(res["inventory"].Output), &local); err != nil {
		t.Fatalf("ferrum-agent inventory: %v\n%s", err, res["inventory"].Output)
	}
	if !slices.Equal(local.Disks, inv.Disks) {
		t.Errorf("ferrum-agent inventory disks differ from inspect's:\n%+v\n%+v", local.Disks, inv.Disks)
	}
}
