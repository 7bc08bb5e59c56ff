package inspect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"

	"github.com/ferrumhq/ferrum/agent/inspect/hints"
	"github.com/ferrumhq/ferrum/agent/runner"
	"github.com/ferrumhq/ferrum/shared/proto"
)

const gib = int64(1) << 30

func newInspector(t *testing.T, cfg Config) *Inspector {
	t.Helper()
	cfg.Log = zerolog.New(zerolog.NewTestWriter(t))
	in, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// fakeAddrs stands in for the kernel's addresses, which a fixture tree does not have.
func fakeAddrs(name string) (string, string) {
	if name == "eth0" {
		return "10.0.2.15", "fec0::5054:ff:fe12:3456"
	}
	return "", ""
}

func qemuDisks() []proto.Disk {
	pre := "/dev/disk/by-path/pci-0000:00:"
	return []proto.Disk{
		{Name: "/dev/md0", Size: 12 * gib, LogicalSectors: 512, PhysicalSectors: 512},
		{Name: "/dev/nvme0n1", Model: "QEMU NVMe Ctrl", Size: 16 * gib, Serial: "NVME-SERIAL-0",
			WWN:              "nvme.1b36-4e564d452d53455249414c2d30-51454d55204e564d65204374726c-00000001",
			WWNWithExtension: "nvme.1b36-4e564d452d53455249414c2d30-51454d55204e564d65204374726c-00000001",
			ByPath:           pre + "04.0-nvme-1", LogicalSectors: 512, PhysicalSectors: 512, Tran: "nvme"},
		{Name: "/dev/sda", Model: "SSD-X", Size: 10 * gib, WWN: "0x5000c500a1b2c3d4", Serial: "SCSI-SERIAL-0", Vendor: "ACME",
			WWNWithExtension: "0x5000c500a1b2c3d4", HCTL: "0:0:0:0", ByPath: pre + "03.0-scsi-0:0:0:0",
			LogicalSectors: 512, PhysicalSectors: 512},
		{Name: "/dev/sdb", Model: "QEMU HARDDISK", Size: 2 * gib, Rotational: true, WWN: "0x600a0b8000123456",
			Serial: "SCSI-SERIAL-1", Vendor: "QEMU", WWNWithExtension: "0x600a0b800012345600000000deadbeef",
			WWNVendorExtension: "0x00000000deadbeef", HCTL: "0:0:1:0", ByPath: pre + "03.0-scsi-0:0:1:0",
			LogicalSectors: 512, PhysicalSectors: 4096},
		{Name: "/dev/sdc", Model: "DataTraveler 3.0", Size: 8 * gib, Rotational: true, Vendor: "Kingston", HCTL: "2:0:0:0",
			ByPath: pre + "1d.0-usb-0:1:1.0-scsi-0:0:0:0", LogicalSectors: 512, PhysicalSectors: 512, Tran: "usb"},
		{Name: "/dev/sdd", Model: "QEMU HARDDISK", Size: 4 * gib, Rotational: true, Serial: "QM00001", Vendor: "ATA",
			HCTL: "3:0:0:0", ByPath: pre + "1f.2-ata-1", LogicalSectors: 512, PhysicalSectors: 512, Tran: "sata"},
		{Name: "/dev/vda", Size: 20 * gib, Rotational: true, Serial: "VDA-SERIAL-0", Vendor: "0x1af4",
			ByPath: pre + "02.0", LogicalSectors: 512, PhysicalSectors: 512},
	}
}

func TestInventoryQEMU(t *testing.T) {
	bmcPath := ""
	in := newInspector(t, Config{Root: "testdata/qemu-q35-ovmf", Addrs: fakeAddrs,
		BMC: func(_ context.Context, path string) (BMCAddress, error) {
			bmcPath = path
			return BMCAddress{IPv4: "10.1.0.5", MAC: "52:54:00:aa:bb:cc"}, nil
		}})
	hs, err := hints.Parse(map[string]any{"serial": "s== SCSI-SERIAL-0"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := in.Inventory(context.Background(), hs)
	if err != nil {
		t.Fatal(err)
	}
	disks := qemuDisks()
	want := proto.Inventory{
		CPU: proto.CPU{ModelName: "Intel Xeon Processor (Cascadelake)", Frequency: "2394.374", Count: 2, Architecture: "x86_64",
			Flags:       strings.Fields("fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ss syscall nx pdpe1gb rdtscp lm constant_tsc rep_good nopl xtopology cpuid pni pclmulqdq vmx ssse3 fma cx16 sse4_1 sse4_2 x2apic avx hypervisor"),
			SocketCount: 1},
		Memory: proto.Memory{Total: 2027412 * 1024, PhysicalMB: 2048},
		Disks:  disks,
		Interfaces: []proto.Interface{
			{Name: "eth0", MACAddress: "52:54:00:12:34:56", IPv4Address: "10.0.2.15", IPv6Address: "fec0::5054:ff:fe12:3456",
				HasCarrier: true, Vendor: "0x1af4", Product: "0x0001", PCIAddress: "0000:00:05.0", Driver: "virtio_net"},
			{Name: "eth1", MACAddress: "52:54:00:12:34:57", Vendor: "0x1af4", Product: "0x0001", PCIAddress: "0000:00:06.0",
				Driver: "virtio_net"},
		},
		SystemVendor: proto.SystemVendor{ProductName: "BM-1000", SerialNumber: "SYS-SERIAL-0001", Manufacturer: "Acme",
			Firmware: proto.Firmware{Vendor: "BMTest", Version: "1.2.3", BuildDate: "02/02/2022"}},
		Boot:       proto.Boot{CurrentBootMode: "uefi", PXEInterface: "52:54:00:12:34:56"},
		BMCAddress: "10.1.0.5", BMCMAC: "52:54:00:aa:bb:cc",
		Hostname: "ramdisk-0",
		Ferrum: &proto.InventoryExtra{SystemUUID: "6c9e1f32-3b52-4b0e-9c1d-1f2e3d4c5b6a",
			RootDisk: &proto.RootDevice{Disk: disks[2],
				Reason: `/dev/sda matches the root device hint serial s== "scsi-serial-0"; first in name order of 1 matching disks (/dev/sda)`}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Inventory (-want +got):\n%s", diff)
	}
	if bmcPath != "testdata/qemu-q35-ovmf/dev/ipmi0" {
		t.Errorf("BMC asked at %q, want the root's dev/ipmi0", bmcPath)
	}
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := proto.DecodeInventory(b); err != nil {
		t.Errorf("the controller would refuse this inventory: %v", err)
	}
}

// A machine without SMBIOS tables, UEFI, IPMI or carrier: the fallbacks.
func TestInventoryARM64Fallbacks(t *testing.T) {
	in := newInspector(t, Config{Root: "testdata/arm64-bios",
		BMC: func(context.Context, string) (BMCAddress, error) {
			return BMCAddress{}, fmt.Errorf("open: %w", os.ErrNotExist)
		}})
	got, err := in.Inventory(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	vda := proto.Disk{Name: "/dev/vda", Size: 8 * gib, Rotational: true, Serial: "ARM-VDA",
		ByPath: "/dev/disk/by-path/platform-4010000000.pcie-pci-0000:00:01.0"}
	want := proto.Inventory{
		CPU:    proto.CPU{Frequency: "2000.000", Count: 1, Flags: strings.Fields("fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid")},
		Memory: proto.Memory{Total: 4008228 * 1024, PhysicalMB: 4096},
		Disks:  []proto.Disk{vda},
		Interfaces: []proto.Interface{{Name: "enp0s2", MACAddress: "52:54:00:ab:cd:ef", Vendor: "0x8086", Product: "0x10d3",
			PCIAddress: "0000:00:02.0", Driver: "e1000e"}},
		SystemVendor: proto.SystemVendor{ProductName: "QEMU KVM Virtual Machine", Manufacturer: "QEMU",
			Firmware: proto.Firmware{Vendor: "EFI Development Kit II / OVMF", Version: "0.0.0", BuildDate: "02/06/2015"}},
		Boot:     proto.Boot{CurrentBootMode: "bios"},
		Hostname: "arm-0",
		Ferrum: &proto.InventoryExtra{SystemUUID: "00000000-0000-0000-0000-000000000000",
			RootDisk: &proto.RootDevice{Disk: vda, Reason: "no root device hints: /dev/vda (8 GiB) is the smallest writable fixed disk of at least 4 GiB"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Inventory (-want +got):\n%s", diff)
	}
}

func TestInventoryWarnings(t *testing.T) {
	in := newInspector(t, Config{Root: "testdata/qemu-q35-ovmf",
		BMC: func(context.Context, string) (BMCAddress, error) {
			return BMCAddress{}, errors.New("ioctl: no such device")
		}})
	hs, err := hints.Parse(map[string]any{"size": 1000})
	if err != nil {
		t.Fatal(err)
	}
	got, err := in.Inventory(context.Background(), hs)
	if err != nil {
		t.Fatal(err)
	}
	if got.BMCAddress != "" || got.Ferrum.RootDisk != nil {
		t.Errorf("BMC %q, root disk %+v; want neither", got.BMCAddress, got.Ferrum.RootDisk)
	}
	want := []string{"bmc address: ioctl: no such device",
		"root disk: no disk matches the root device hints (size == 1000): /dev/md0: size is 12 GiB (wants size == 1000); " +
			"/dev/nvme0n1: size is 16 GiB (wants size == 1000); /dev/sda: size is 10 GiB (wants size == 1000); " +
			"/dev/sdb: size is 2 GiB (wants size == 1000); /dev/sdc: size is 8 GiB (wants size == 1000); " +
			"/dev/sdd: size is 4 GiB (wants size == 1000); /dev/vda: size is 20 GiB (wants size == 1000)"}
	if diff := cmp.Diff(want, got.Ferrum.Warnings); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

// A tree missing what an inventory cannot do without fails; one missing SMBIOS does not.
func TestInventoryMissingParts(t *testing.T) {
	for _, tc := range []struct {
		remove string
		fails  bool
	}{
		{"proc/cpuinfo", true},
		{"proc/meminfo", true},
		{"sys/block", true},
		{"sys/class/net", true},
		{"sys/firmware/dmi", false},
		{"sys/class/dmi", false},
		{"proc/cmdline", false},
	} {
		t.Run(strings.ReplaceAll(tc.remove, "/", "-"), func(t *testing.T) {
			root := t.TempDir()
			if err := os.CopyFS(root, os.DirFS("testdata/qemu-q35-ovmf")); err != nil {
				t.Fatal(err)
			}
			if err := os.RemoveAll(root + "/" + tc.remove); err != nil {
				t.Fatal(err)
			}
			_, err := newInspector(t, Config{Root: root}).Inventory(context.Background(), nil)
			if (err != nil) != tc.fails {
				t.Errorf("without %s: Inventory error = %v, want failure %v", tc.remove, err, tc.fails)
			}
		})
	}
}

func TestNew(t *testing.T) {
	if _, err := New(Config{Root: "testdata/nothing-here"}); err == nil {
		t.Error("New with a missing root succeeded")
	}
	if _, err := New(Config{Root: "inspect.go"}); err == nil {
		t.Error("New with a file as root succeeded")
	}
	in, err := New(Config{})
	if err != nil || in.cfg.Root != "/" || in.cfg.Addrs == nil || in.cfg.BMC == nil {
		t.Errorf("New(Config{}) = %+v, %v; want root / with the host's addresses and BMC", in, err)
	}
	in, err = New(Config{Root: "testdata/arm64-bios"})
	if err != nil || in.cfg.Addrs != nil || in.cfg.BMC != nil {
		t.Errorf("New(fixture root) = %+v, %v; want no host addresses or BMC", in, err)
	}
}

// The commands through a runner, as the controller runs them.
func TestHandlers(t *testing.T) {
	r := runner.New(runner.Config{Log: zerolog.New(zerolog.NewTestWriter(t))})
	defer r.Close()
	if err := Register(r, Config{Root: "testdata/qemu-q35-ovmf"}); err != nil {
		t.Fatal(err)
	}
	if err := Register(r, Config{Root: "testdata/none"}); err == nil {
		t.Error("Register with a missing root succeeded")
	}
	run := func(id, name, args string) proto.Result {
		t.Helper()
		cmd := proto.Command{ID: id, Name: name}
		if args != "" {
			cmd.Args = json.RawMessage(args)
		}
		j, perr := r.Start(cmd, nil)
		if perr != nil {
			t.Fatalf("Start(%s): %v", name, perr)
		}
		select {
		case <-j.Done():
		case <-time.After(10 * time.Second):
			t.Fatalf("%s did not finish", name)
		}
		return j.Result()
	}
	tests := []struct {
		name, cmd, args string
		code            proto.Code // "" for success
		check           func(t *testing.T, data json.RawMessage)
	}{
		{"inspect/no-args", proto.CmdInspect, "", "", func(t *testing.T, data json.RawMessage) {
			inv, err := proto.DecodeInventory(data)
			if err != nil {
				t.Fatal(err)
			}
			if inv.CPU.Count != 2 || len(inv.Disks) != 7 || inv.Ferrum.RootDisk.Disk.Name != "/dev/sda" {
				t.Errorf("inventory: %d CPUs, %d disks, root %s", inv.CPU.Count, len(inv.Disks), inv.Ferrum.RootDisk.Disk.Name)
			}
		}},
		{"inspect/hints", proto.CmdInspect, `{"root_device":{"name":"vda"}}`, "", func(t *testing.T, data json.RawMessage) {
			var inv proto.Inventory
			if err := json.Unmarshal(data, &inv); err != nil {
				t.Fatal(err)
			}
			if inv.Ferrum.RootDisk.Disk.Name != "/dev/vda" {
				t.Errorf("root disk %s, want /dev/vda", inv.Ferrum.RootDisk.Disk.Name)
			}
		}},
		{"inspect/bad-hints", proto.CmdInspect, `{"root_device":{"colour":"red"}}`, proto.CodeBadRequest, nil},
		{"inspect/bad-json", proto.CmdInspect, `{"root_device":[]}`, proto.CodeBadRequest, nil},
		{"resolve/default", proto.CmdResolveRootDevice, "", "", func(t *testing.T, data json.RawMessage) {
			var rd proto.RootDevice
			if err := json.Unmarshal(data, &rd); err != nil {
				t.Fatal(err)
			}
			if rd.Disk.Name != "/dev/sda" || !strings.HasPrefix(rd.Reason, "no root device hints") {
				t.Errorf("resolve_root_device() = %+v", rd)
			}
		}},
		{"resolve/wwn-and-rotational", proto.CmdResolveRootDevice, `{"root_device":{"wwn":"0x600A0B8000123456","rotational":"true"}}`, "",
			func(t *testing.T, data json.RawMessage) {
				var rd proto.RootDevice
				if err := json.Unmarshal(data, &rd); err != nil {
					t.Fatal(err)
				}
				if rd.Disk.Name != "/dev/sdb" || rd.Disk.Serial != "SCSI-SERIAL-1" {
					t.Errorf("resolve_root_device(wwn) = %+v", rd)
				}
			}},
		{"resolve/no-match", proto.CmdResolveRootDevice, `{"root_device":{"serial":"nope"}}`, proto.CodeFailed, nil},
		{"resolve/bad-hint", proto.CmdResolveRootDevice, `{"root_device":{"size":"big"}}`, proto.CodeBadRequest, nil},
		{"resolve/bad-json", proto.CmdResolveRootDevice, `[`, proto.CodeBadRequest, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := run(tc.name, tc.cmd, tc.args)
			if tc.code != "" {
				if res.Error == nil || res.Error.Code != tc.code {
					t.Fatalf("%s(%s) = %+v, want code %s", tc.cmd, tc.args, res, tc.code)
				}
				return
			}
			if res.Error != nil {
				t.Fatalf("%s(%s) failed: %v", tc.cmd, tc.args, res.Error)
			}
			tc.check(t, res.Data)
		})
	}
}

// The machine the tests run on is a real test too.
func TestInventoryHost(t *testing.T) {
	for _, p := range []string{"/proc/cpuinfo", "/sys/block", "/sys/class/net"} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("not a Linux machine with sysfs and procfs (%v)", err)
		}
	}
	in := newInspector(t, Config{})
	inv, err := in.Inventory(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if inv.CPU.Count <= 0 || inv.Memory.Total <= 0 || inv.Memory.PhysicalMB <= 0 || inv.CPU.Architecture == "" {
		t.Errorf("host inventory: cpu %+v, memory %+v", inv.CPU, inv.Memory)
	}
	if len(inv.Interfaces) == 0 {
		t.Errorf("host inventory has no interfaces")
	}
	t.Logf("host: %d CPUs, %d MiB, %d disks, %d interfaces, warnings %q", inv.CPU.Count, inv.Memory.PhysicalMB,
		len(inv.Disks), len(inv.Interfaces), inv.Ferrum.Warnings)
}
