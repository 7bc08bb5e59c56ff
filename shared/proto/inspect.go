package proto

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Inspection commands (v3, FeatureInspect). Neither changes the machine.
const (
	// CmdInspect collects the machine's inventory in Ironic's format. Arguments InspectArgs
	// (optional), result Inventory.
	CmdInspect = "inspect"
	// CmdResolveRootDevice picks the disk an image would be written to from Ironic's root
	// device hints (none: the smallest disk of at least 4 GiB). Arguments
	// ResolveRootDeviceArgs, result RootDevice. No disk matching fails with CodeFailed; bad
	// hints with CodeBadRequest.
	CmdResolveRootDevice = "resolve_root_device"
)

func init() { registerCommands(FeatureInspect, CmdInspect, CmdResolveRootDevice) }

// InspectArgs are inspect's arguments.
type InspectArgs struct {
	// RootDeviceHints (Ironic's root_device property), when set or not, choose the root disk
	// reported in Inventory.Ferrum.RootDisk, as Ironic's inspection does.
	RootDeviceHints map[string]any `json:"root_device,omitempty"`
}

// Inventory is the machine's hardware in the format of Ironic's agent (IPA's
// list_hardware_info), as GET /v1/nodes/{node}/inventory returns it. Strings the machine does
// not report are "" where IPA sends null. Ferrum's own additions live under the "ferrum" key
// only, so the rest is exactly Ironic's.
type Inventory struct {
	CPU          CPU          `json:"cpu"`
	Memory       Memory       `json:"memory"`
	Disks        []Disk       `json:"disks"`
	Interfaces   []Interface  `json:"interfaces"`
	SystemVendor SystemVendor `json:"system_vendor"`
	Boot         Boot         `json:"boot"`
	// BMCAddress and BMCV6Address are the BMC's LAN addresses read in-band through
	// /dev/ipmi0; absent when the machine has no in-band IPMI (IPA: null).
	BMCAddress   string `json:"bmc_address,omitempty"`
	BMCV6Address string `json:"bmc_v6address,omitempty"`
	BMCMAC       string `json:"bmc_mac,omitempty"`
	Hostname     string `json:"hostname"`
	// Ferrum holds what Ironic's inventory has no key for; the controller stores the inventory
	// without it.
	Ferrum *InventoryExtra `json:"ferrum,omitempty"`
}

// CPU is inventory.cpu.
type CPU struct {
	ModelName string `json:"model_name"`
	// Frequency in MHz, a string as IPA sends it ("2400.000").
	Frequency    string   `json:"frequency"`
	Count        int      `json:"count"`
	Architecture string   `json:"architecture"`
	Flags        []string `json:"flags"`
	SocketCount  int      `json:"socket_count,omitempty"`
}

// Memory is inventory.memory.
type Memory struct {
	// Total is the memory the kernel manages, in bytes.
	Total int64 `json:"total"`
	// PhysicalMB is the installed memory in MiB (SMBIOS memory devices; else Total rounded
	// up to a GiB), what Ironic schedules on.
	PhysicalMB int64 `json:"physical_mb"`
}

// Disk is one entry of inventory.disks.
type Disk struct {
	Name               string `json:"name"`
	Model              string `json:"model"`
	Size               int64  `json:"size"`
	Rotational         bool   `json:"rotational"`
	WWN                string `json:"wwn"`
	Serial             string `json:"serial"`
	Vendor             string `json:"vendor"`
	WWNWithExtension   string `json:"wwn_with_extension"`
	WWNVendorExtension string `json:"wwn_vendor_extension"`
	HCTL               string `json:"hctl"`
	ByPath             string `json:"by_path"`
	// LogicalSectors and PhysicalSectors are the sector sizes in bytes (IPA's names).
	LogicalSectors  int    `json:"logical_sectors,omitempty"`
	PhysicalSectors int    `json:"physical_sectors,omitempty"`
	Tran            string `json:"tran,omitempty"`
}

// Interface is one entry of inventory.interfaces.
type Interface struct {
	Name        string `json:"name"`
	MACAddress  string `json:"mac_address"`
	IPv4Address string `json:"ipv4_address"`
	IPv6Address string `json:"ipv6_address"`
	HasCarrier  bool   `json:"has_carrier"`
	// Vendor and Product are the PCI IDs ("0x8086").
	Vendor     string `json:"vendor"`
	Product    string `json:"product"`
	SpeedMbps  int    `json:"speed_mbps,omitempty"`
	PCIAddress string `json:"pci_address,omitempty"`
	Driver     string `json:"driver"`
}

// SystemVendor is inventory.system_vendor (SMBIOS types 1 and 0).
type SystemVendor struct {
	ProductName  string   `json:"product_name"`
	SerialNumber string   `json:"serial_number"`
	Manufacturer string   `json:"manufacturer"`
	Firmware     Firmware `json:"firmware"`
}

// Firmware is system_vendor.firmware.
type Firmware struct {
	Vendor    string `json:"vendor"`
	Version   string `json:"version"`
	BuildDate string `json:"build_date"`
}

// Boot is inventory.boot.
type Boot struct {
	// CurrentBootMode is BootModeUEFI or BootModeBIOS.
	CurrentBootMode string `json:"current_boot_mode"`
	// PXEInterface is the MAC the machine booted from (BOOTIF), when known.
	PXEInterface string `json:"pxe_interface,omitempty"`
}

// InventoryExtra is Ferrum's part of the inventory.
type InventoryExtra struct {
	// SystemUUID is the SMBIOS system UUID (type 1), lower case.
	SystemUUID string `json:"system_uuid,omitempty"`
	// RootDisk is the disk the root device hints of InspectArgs choose, when one does.
	RootDisk *RootDevice `json:"root_disk,omitempty"`
	// Warnings name what could not be collected (e.g. SMBIOS tables unreadable) without
	// failing the inspection.
	Warnings []string `json:"warnings,omitempty"`
}

// ResolveRootDeviceArgs are resolve_root_device's arguments.
type ResolveRootDeviceArgs struct {
	// RootDeviceHints is Ironic's root_device: key → expression, e.g. {"size": ">= 100",
	// "rotational": false}.
	RootDeviceHints map[string]any `json:"root_device,omitempty"`
}

// Validate checks the number of hints; their meaning is checked by the agent.
func (a *ResolveRootDeviceArgs) Validate() error {
	if len(a.RootDeviceHints) > MaxRootHints {
		return fmt.Errorf("resolve_root_device: %d root_device hints, at most %d", len(a.RootDeviceHints), MaxRootHints)
	}
	return nil
}

// RootDevice is resolve_root_device's result: the chosen disk and why.
type RootDevice struct {
	Disk Disk `json:"disk"`
	// Reason says why this disk, e.g. `all 2 hints match (serial s== "s1", size >= 100); first
	// of 1 matching disks`.
	Reason string `json:"reason"`
}

// DecodeInventory decodes and checks an inventory as the controller receives it: every
// interface has a MAC address (Ironic's schema asks for at least one interface) and counts and
// sizes are not negative. Unknown keys are ignored: a newer agent may send more.
func DecodeInventory(b []byte) (*Inventory, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	var inv Inventory
	if err := dec.Decode(&inv); err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	if dec.More() {
		return nil, errors.New("inventory: trailing data")
	}
	if err := inv.Validate(); err != nil {
		return nil, err
	}
	return &inv, nil
}

// Validate checks the inventory's invariants (see DecodeInventory).
func (inv *Inventory) Validate() error {
	if len(inv.Interfaces) == 0 {
		return errors.New("inventory: no interfaces")
	}
	for i, ifc := range inv.Interfaces {
		if ifc.MACAddress == "" {
			return fmt.Errorf("inventory: interface %d (%q) has no mac_address", i, ifc.Name)
		}
	}
	if inv.CPU.Count < 0 || inv.CPU.SocketCount < 0 {
		return errors.New("inventory: negative cpu count")
	}
	if inv.Memory.Total < 0 || inv.Memory.PhysicalMB < 0 {
		return errors.New("inventory: negative memory")
	}
	for i, d := range inv.Disks {
		if d.Name == "" || d.Size < 0 {
			return fmt.Errorf("inventory: disk %d has no name or a negative size", i)
		}
	}
	return nil
}
