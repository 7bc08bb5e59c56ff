package proto

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
)

// Software RAID commands (v3, FeatureRAID).
const (
	// CmdCreateRAID builds the software RAID of a target_raid_config with mdadm. Mutating.
	// Arguments CreateRAIDArgs, result RAIDStatus (the arrays after creation).
	CmdCreateRAID = "create_raid"
	// CmdDeleteRAID stops every md array and erases its members' RAID superblocks and
	// partitions. Mutating. No arguments; result DeleteRAIDResult.
	CmdDeleteRAID = "delete_raid"
	// CmdGetRAID lists the md arrays. Not mutating. No arguments; result RAIDStatus.
	CmdGetRAID = "get_raid"
)

func init() { registerCommands(FeatureRAID, CmdCreateRAID, CmdDeleteRAID, CmdGetRAID) }

// RAID levels of target_raid_config (Ironic's raid_config_schema.json).
const (
	RAIDLevelJBOD = "JBOD"
	RAIDLevel0    = "0"
	RAIDLevel1    = "1"
	RAIDLevel2    = "2"
	RAIDLevel5    = "5"
	RAIDLevel6    = "6"
	RAIDLevel10   = "1+0"
	RAIDLevel50   = "5+0"
	RAIDLevel60   = "6+0"
)

// RAIDControllerSoftware in a logical disk's controller selects software RAID.
const RAIDControllerSoftware = "software"

// MaxLogicalDisks bounds a target_raid_config; software RAID allows 2 (SoftwareMaxLogicalDisks).
const (
	MaxLogicalDisks         = 64
	SoftwareMaxLogicalDisks = 2
	MaxPhysicalDisks        = 64
)

// RAIDConfig is Ironic's target_raid_config (and raid_config).
type RAIDConfig struct {
	LogicalDisks []LogicalDisk `json:"logical_disks"`
}

// LogicalDisk is one entry of RAIDConfig, with Ironic's keys.
type LogicalDisk struct {
	RAIDLevel             string   `json:"raid_level"`
	SizeGB                RAIDSize `json:"size_gb"`
	VolumeName            string   `json:"volume_name,omitempty"`
	IsRootVolume          bool     `json:"is_root_volume,omitempty"`
	SharePhysicalDisks    bool     `json:"share_physical_disks,omitempty"`
	DiskType              string   `json:"disk_type,omitempty"`
	InterfaceType         string   `json:"interface_type,omitempty"`
	NumberOfPhysicalDisks int      `json:"number_of_physical_disks,omitempty"`
	Controller            string   `json:"controller,omitempty"`
	// PhysicalDisks are device names ("/dev/sda") or root-device-hint objects.
	PhysicalDisks []json.RawMessage `json:"physical_disks,omitempty"`
}

// RAIDSize is size_gb: a number of GiB, or "MAX" (the rest of the disks).
type RAIDSize struct {
	GB  int64
	Max bool
}

// MarshalJSON writes an integer or "MAX".
func (s RAIDSize) MarshalJSON() ([]byte, error) {
	if s.Max {
		return []byte(`"MAX"`), nil
	}
	return strconv.AppendInt(nil, s.GB, 10), nil
}

// UnmarshalJSON reads a non-negative integer or "MAX".
func (s *RAIDSize) UnmarshalJSON(b []byte) error {
	if string(b) == `"MAX"` {
		*s = RAIDSize{Max: true}
		return nil
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("size_gb %s: want a non-negative integer or \"MAX\"", b)
	}
	*s = RAIDSize{GB: n}
	return nil
}

func (s RAIDSize) String() string {
	if s.Max {
		return "MAX"
	}
	return strconv.FormatInt(s.GB, 10)
}

// Validate checks Ironic's schema rules (raid_config_schema.json and common/raid.py).
func (c *RAIDConfig) Validate() error {
	if len(c.LogicalDisks) == 0 {
		return fmt.Errorf("raid config: no logical_disks")
	}
	if len(c.LogicalDisks) > MaxLogicalDisks {
		return fmt.Errorf("raid config: %d logical_disks, at most %d", len(c.LogicalDisks), MaxLogicalDisks)
	}
	roots := 0
	for i, ld := range c.LogicalDisks {
		switch ld.RAIDLevel {
		case RAIDLevelJBOD, RAIDLevel0, RAIDLevel1, RAIDLevel2, RAIDLevel5, RAIDLevel6, RAIDLevel10, RAIDLevel50, RAIDLevel60:
		default:
			return fmt.Errorf("raid config: logical disk %d: raid_level %q is not one of JBOD, 0, 1, 2, 5, 6, 1+0, 5+0, 6+0", i, ld.RAIDLevel)
		}
		if !ld.SizeGB.Max && ld.SizeGB.GB < 0 {
			return fmt.Errorf("raid config: logical disk %d: negative size_gb", i)
		}
		if ld.IsRootVolume {
			roots++
		}
		if ld.DiskType != "" && ld.DiskType != "hdd" && ld.DiskType != "ssd" {
			return fmt.Errorf("raid config: logical disk %d: disk_type %q, want hdd or ssd", i, ld.DiskType)
		}
		switch ld.InterfaceType {
		case "", "sata", "scsi", "sas":
		default:
			return fmt.Errorf("raid config: logical disk %d: interface_type %q, want sata, scsi or sas", i, ld.InterfaceType)
		}
		if ld.NumberOfPhysicalDisks < 0 {
			return fmt.Errorf("raid config: logical disk %d: number_of_physical_disks must be positive", i)
		}
		if len(ld.PhysicalDisks) > 0 && ld.Controller == "" {
			return fmt.Errorf("raid config: logical disk %d: physical_disks needs a controller", i)
		}
		if len(ld.PhysicalDisks) > MaxPhysicalDisks {
			return fmt.Errorf("raid config: logical disk %d: %d physical_disks, at most %d", i, len(ld.PhysicalDisks), MaxPhysicalDisks)
		}
		for _, p := range ld.PhysicalDisks {
			if _, _, err := ParsePhysicalDisk(p); err != nil {
				return fmt.Errorf("raid config: logical disk %d: %w", i, err)
			}
		}
	}
	if roots > 1 {
		return fmt.Errorf("raid config: %d logical disks have is_root_volume, at most one may", roots)
	}
	return nil
}

// ParsePhysicalDisk reads one physical_disks entry: a device name, or a root-device-hint
// object (string and number values only).
func ParsePhysicalDisk(raw json.RawMessage) (name string, hints map[string]any, err error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		if err := json.Unmarshal(raw, &name); err != nil || name == "" {
			return "", nil, fmt.Errorf("physical_disks: bad device name %s", raw)
		}
		return name, nil, nil
	}
	if err := json.Unmarshal(raw, &hints); err != nil || len(hints) == 0 {
		return "", nil, fmt.Errorf("physical_disks: want a device name or a non-empty hint object, got %.40s", raw)
	}
	for k, v := range hints {
		switch v.(type) {
		case string, float64, bool:
		default:
			return "", nil, fmt.Errorf("physical_disks: hint %q must be a string, number or boolean", k)
		}
	}
	return "", hints, nil
}

// MinSoftwareRAIDDevices is the fewest member devices mdadm needs per level.
var MinSoftwareRAIDDevices = map[string]int{RAIDLevel0: 2, RAIDLevel1: 2, RAIDLevel5: 3, RAIDLevel6: 4, RAIDLevel10: 4}

// ValidateSoftware checks the software-RAID rules of ironic-python-agent on top of Validate:
// every logical disk has controller "software"; one or two logical disks, the first RAID-1;
// levels 0, 1, 5, 6 and 1+0; at most one size_gb "MAX", and it comes last; every logical disk
// lists the same physical_disks (or none); unique volume names. disks, when positive, is the
// number of member disks and is checked against each level's minimum.
func (c *RAIDConfig) ValidateSoftware(disks int) error {
	if err := c.Validate(); err != nil {
		return err
	}
	lds := c.LogicalDisks
	if len(lds) > SoftwareMaxLogicalDisks {
		return fmt.Errorf("software raid: %d logical disks, at most %d", len(lds), SoftwareMaxLogicalDisks)
	}
	names := map[string]bool{}
	for i, ld := range lds {
		if ld.Controller != RAIDControllerSoftware {
			return fmt.Errorf("software raid: logical disk %d: controller %q, want %q (hardware and software RAID do not mix)", i, ld.Controller, RAIDControllerSoftware)
		}
		minDevs, ok := MinSoftwareRAIDDevices[ld.RAIDLevel]
		if !ok {
			return fmt.Errorf("software raid: logical disk %d: raid_level %q not supported (0, 1, 5, 6, 1+0)", i, ld.RAIDLevel)
		}
		if i == 0 && ld.RAIDLevel != RAIDLevel1 {
			return fmt.Errorf("software raid: the first logical disk must be RAID-1, not %q", ld.RAIDLevel)
		}
		if ld.SizeGB.Max && i != len(lds)-1 {
			return fmt.Errorf("software raid: logical disk %d: size_gb MAX only on the last logical disk", i)
		}
		if !ld.SizeGB.Max && ld.SizeGB.GB == 0 {
			return fmt.Errorf("software raid: logical disk %d: size_gb 0", i)
		}
		if ld.VolumeName != "" {
			if names[ld.VolumeName] {
				return fmt.Errorf("software raid: volume_name %q used twice", ld.VolumeName)
			}
			names[ld.VolumeName] = true
		}
		n := disks
		if len(ld.PhysicalDisks) > 0 {
			n = len(ld.PhysicalDisks)
		}
		if ld.NumberOfPhysicalDisks > 0 && n > 0 && ld.NumberOfPhysicalDisks != n {
			return fmt.Errorf("software raid: logical disk %d: number_of_physical_disks %d but %d disks", i, ld.NumberOfPhysicalDisks, n)
		}
		if n > 0 && n < minDevs {
			return fmt.Errorf("software raid: logical disk %d: RAID-%s needs at least %d disks, has %d", i, ld.RAIDLevel, minDevs, n)
		}
		if !slices.EqualFunc(ld.PhysicalDisks, lds[0].PhysicalDisks, func(a, b json.RawMessage) bool { return bytes.Equal(a, b) }) {
			return fmt.Errorf("software raid: logical disk %d: physical_disks differ from logical disk 0's; all arrays span the same disks", i)
		}
	}
	return nil
}

// Boot modes for the space left before the RAID partitions.
const (
	BootModeUEFI = "uefi"
	BootModeBIOS = "bios"
)

// CreateRAIDArgs are create_raid's arguments.
type CreateRAIDArgs struct {
	// TargetRAIDConfig is the node's target_raid_config; only software RAID.
	TargetRAIDConfig RAIDConfig `json:"target_raid_config"`
	// DeleteExisting first removes every existing array (apply_configuration's delete_existing).
	DeleteExisting bool `json:"delete_existing,omitempty"`
	// BootMode "uefi" (default) reserves an EFI system partition slot on every member, "bios" a
	// bios_grub slot, so that a bootloader can be installed on each.
	BootMode string `json:"boot_mode,omitempty"`
	// Devices names the member disks when the logical disks give no physical_disks; empty: every
	// disk of the node that has no partitions and is not removable.
	Devices []string `json:"devices,omitempty"`
}

// Validate checks the arguments without touching the disks.
func (a *CreateRAIDArgs) Validate() error {
	switch a.BootMode {
	case "", BootModeUEFI, BootModeBIOS:
	default:
		return fmt.Errorf("create_raid: boot_mode %q, want uefi or bios", a.BootMode)
	}
	if len(a.Devices) > MaxPhysicalDisks {
		return fmt.Errorf("create_raid: %d devices, at most %d", len(a.Devices), MaxPhysicalDisks)
	}
	for _, d := range a.Devices {
		if err := checkDevicePath("create_raid: device", d, true); err != nil {
			return err
		}
	}
	if len(a.Devices) > 0 && len(a.TargetRAIDConfig.LogicalDisks) > 0 && len(a.TargetRAIDConfig.LogicalDisks[0].PhysicalDisks) > 0 {
		return fmt.Errorf("create_raid: devices and physical_disks both given")
	}
	if err := a.TargetRAIDConfig.ValidateSoftware(len(a.Devices)); err != nil {
		return fmt.Errorf("create_raid: %w", err)
	}
	return nil
}

// RAIDArray is one md array as the agent sees it.
type RAIDArray struct {
	// Name is the array's device, /dev/md0.
	Name string `json:"name"`
	// RAIDLevel is Ironic's level ("1", "1+0"); mdadm's raid10 is "1+0".
	RAIDLevel string `json:"raid_level"`
	// SizeBytes is the array's usable size.
	SizeBytes int64  `json:"size"`
	UUID      string `json:"uuid,omitempty"`
	// VolumeName is the logical disk's volume_name, kept as the array's md name.
	VolumeName string `json:"volume_name,omitempty"`
	// Members are the component partitions (/dev/sda2); PhysicalDisks their disks.
	Members       []string `json:"members"`
	PhysicalDisks []string `json:"physical_disks,omitempty"`
	// State is mdadm's array_state (clean, active, resync, degraded...).
	State string `json:"state,omitempty"`
	// Metadata is the superblock version (1.2; 1.0 for the ESP mirror).
	Metadata string `json:"metadata,omitempty"`
}

// RAIDStatus is get_raid's and create_raid's result.
type RAIDStatus struct {
	Arrays []RAIDArray `json:"arrays"`
	// RootDevice is the root volume's array (/dev/md0) after create_raid: the root device hint
	// {"name": RootDevice} selects it.
	RootDevice string `json:"root_device,omitempty"`
	// RAIDConfig is what Ironic stores as the node's raid_config after create_raid.
	RAIDConfig *RAIDConfig `json:"raid_config,omitempty"`
}

// DeleteRAIDResult is delete_raid's result.
type DeleteRAIDResult struct {
	// Stopped are the arrays stopped; Wiped the devices whose RAID superblocks and partition
	// tables were erased.
	Stopped []string `json:"stopped"`
	Wiped   []string `json:"wiped"`
}
