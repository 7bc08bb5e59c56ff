package proto

import (
	"encoding/json"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func exampleInventory() Inventory {
	return Inventory{
		CPU: CPU{ModelName: "QEMU Virtual CPU version 2.5+", Frequency: "2400.000", Count: 2, Architecture: "x86_64",
			Flags: []string{"fpu", "sse2"}, SocketCount: 1},
		Memory: Memory{Total: 2058280960, PhysicalMB: 2048},
		Disks: []Disk{
			{Name: "/dev/sda", Model: "SSD-X", Size: 10 << 30, WWN: "0x5000c500a1b2c3d4", Serial: "SCSI-SERIAL-0",
				Vendor: "ACME", WWNWithExtension: "0x5000c500a1b2c3d4", HCTL: "0:0:0:0",
				ByPath: "/dev/disk/by-path/pci-0000:00:03.0-scsi-0:0:0:0", LogicalSectors: 512, PhysicalSectors: 512},
			{Name: "/dev/vda", Size: 20 << 30, Rotational: true, Serial: "VDA-SERIAL-0", Vendor: "0x1af4",
				ByPath: "/dev/disk/by-path/pci-0000:00:02.0", LogicalSectors: 512, PhysicalSectors: 512},
		},
		Interfaces: []Interface{{Name: "eth0", MACAddress: "52:54:00:12:34:56", IPv4Address: "10.0.2.15",
			IPv6Address: "fe80::5054:ff:fe12:3456", HasCarrier: true, Vendor: "0x1af4", Product: "0x0001",
			PCIAddress: "0000:00:05.0", Driver: "virtio_net", SpeedMbps: 1000}},
		SystemVendor: SystemVendor{ProductName: "BM-1000", SerialNumber: "SYS-SERIAL-0001", Manufacturer: "Acme",
			Firmware: Firmware{Vendor: "BMTest", Version: "1.2.3", BuildDate: "04/01/2014"}},
		Boot:       Boot{CurrentBootMode: BootModeUEFI, PXEInterface: "52:54:00:12:34:56"},
		BMCAddress: "10.1.0.5", BMCMAC: "52:54:00:aa:bb:cc",
		Hostname: "ramdisk",
	}
}

func init() {
	v3Examples = append(v3Examples, func() []example {
		inv := exampleInventory()
		withExtra := exampleInventory()
		withExtra.Ferrum = &InventoryExtra{SystemUUID: "6c9e1f32-3b52-4b0e-9c1d-1f2e3d4c5b6a",
			RootDisk: &RootDevice{Disk: inv.Disks[0], Reason: "no root device hints: smallest disk of at least 4 GiB"},
			Warnings: []string{"bmc: no /dev/ipmi0"}}
		return []example{
			{"inspect.args", InspectArgs{RootDeviceHints: map[string]any{"serial": "s== SCSI-SERIAL-0"}}},
			{"inspect.result", inv},
			{"inspect.result.ferrum", withExtra},
			{"resolve_root_device.args", ResolveRootDeviceArgs{RootDeviceHints: map[string]any{
				"size": ">= 8", "rotational": false, "model": "<in> ssd"}}},
			{"resolve_root_device.result", RootDevice{Disk: inv.Disks[0],
				Reason: `all 3 hints match (model <in> "ssd", rotational false, size >= 8); first of 1 matching disks`}},
		}
	})
}

// The inventory's keys are Ironic's (ironic.md §5): a renamed field would break every
// consumer of GET /v1/nodes/{node}/inventory.
func TestInventoryKeys(t *testing.T) {
	b, err := json.Marshal(exampleInventory())
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	keys := func(raw json.RawMessage) []string {
		var o map[string]any
		if raw[0] == '[' {
			var a []map[string]any
			if err := json.Unmarshal(raw, &a); err != nil {
				t.Fatal(err)
			}
			o = a[0]
		} else if err := json.Unmarshal(raw, &o); err != nil {
			t.Fatal(err)
		}
		return slices.Sorted(maps.Keys(o))
	}
	want := map[string][]string{
		"cpu":           {"architecture", "count", "flags", "frequency", "model_name", "socket_count"},
		"memory":        {"physical_mb", "total"},
		"disks":         {"by_path", "hctl", "logical_sectors", "model", "name", "physical_sectors", "rotational", "serial", "size", "vendor", "wwn", "wwn_vendor_extension", "wwn_with_extension"},
		"interfaces":    {"driver", "has_carrier", "ipv4_address", "ipv6_address", "mac_address", "name", "pci_address", "product", "speed_mbps", "vendor"},
		"system_vendor": {"firmware", "manufacturer", "product_name", "serial_number"},
		"boot":          {"current_boot_mode", "pxe_interface"},
	}
	for k, w := range want {
		if diff := cmp.Diff(w, keys(m[k])); diff != "" {
			t.Errorf("keys of %s (-want +got):\n%s", k, diff)
		}
	}
	top := slices.Sorted(maps.Keys(m))
	if diff := cmp.Diff([]string{"bmc_address", "bmc_mac", "boot", "cpu", "disks", "hostname", "interfaces", "memory", "system_vendor"}, top); diff != "" {
		t.Errorf("top-level keys (-want +got):\n%s", diff)
	}
}

func TestDecodeInventory(t *testing.T) {
	good, err := json.Marshal(exampleInventory())
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeInventory(good)
	if err != nil {
		t.Fatalf("DecodeInventory(example) = %v", err)
	}
	if diff := cmp.Diff(exampleInventory(), *got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	golden, err := os.ReadFile("testdata/v3/inspect.result.ferrum.json")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeInventory(golden); err != nil {
		t.Errorf("DecodeInventory(golden with ferrum extras) = %v", err)
	}
	// a newer agent's keys are ignored
	if _, err := DecodeInventory([]byte(`{"interfaces":[{"mac_address":"a","lldp":[]}],"gpu":1,"cpu":{"count":1,"cache":2}}`)); err != nil {
		t.Errorf("DecodeInventory(unknown keys) = %v, want them ignored", err)
	}
	bad := []struct{ name, in, want string }{
		{"not-json", `{`, "inventory:"},
		{"trailing", string(good) + `{}`, "trailing"},
		{"no-interfaces", `{"cpu":{"count":1}}`, "no interfaces"},
		{"no-mac", `{"interfaces":[{"name":"eth0"}]}`, "no mac_address"},
		{"negative-cpus", `{"interfaces":[{"mac_address":"a"}],"cpu":{"count":-1}}`, "negative cpu"},
		{"negative-memory", `{"interfaces":[{"mac_address":"a"}],"memory":{"total":-1}}`, "negative memory"},
		{"nameless-disk", `{"interfaces":[{"mac_address":"a"}],"disks":[{"size":1}]}`, "no name"},
		{"wrong-type", `{"interfaces":[{"mac_address":"a"}],"cpu":{"count":"2"}}`, "cannot unmarshal"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeInventory([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("DecodeInventory(%s) = %v, want an error containing %q", tc.in, err, tc.want)
			}
		})
	}
}

func TestResolveRootDeviceArgsValidate(t *testing.T) {
	a := ResolveRootDeviceArgs{RootDeviceHints: map[string]any{"size": 10}}
	if err := a.Validate(); err != nil {
		t.Errorf("Validate(1 hint) = %v", err)
	}
	for i := range MaxRootHints + 1 {
		a.RootDeviceHints[string(rune('a'+i%26))+strings.Repeat("x", i)] = 1
	}
	if err := a.Validate(); err == nil {
		t.Errorf("Validate(%d hints) succeeded", len(a.RootDeviceHints))
	}
	if CommandFeature(CmdInspect) != FeatureInspect || CommandFeature(CmdResolveRootDevice) != FeatureInspect {
		t.Error("inspect commands are not registered under FeatureInspect")
	}
}

// FuzzDecodeInventory: any input decodes to a valid inventory that survives a round trip, or
// fails with an error.
func FuzzDecodeInventory(f *testing.F) {
	for _, name := range []string{"inspect.result", "inspect.result.ferrum"} {
		b, err := os.ReadFile("testdata/v3/" + name + ".json")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"interfaces":[{"mac_address":"a"}]}`))
	f.Add([]byte(`{"interfaces":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		inv, err := DecodeInventory(b)
		if err != nil {
			return
		}
		out, err := json.Marshal(inv)
		if err != nil {
			t.Fatalf("decoded inventory does not encode: %v", err)
		}
		again, err := DecodeInventory(out)
		if err != nil {
			t.Fatalf("re-encoded inventory does not decode: %v\n%s", err, out)
		}
		if diff := cmp.Diff(inv, again); diff != "" {
			t.Fatalf("round trip changed the inventory (-first +second):\n%s", diff)
		}
	})
}
