package proto

import (
	"fmt"
	"strings"
)

// BIOS commands (v3, FeatureBIOS). They mirror Ironic's BIOS interface: the settings cached
// for GET /v1/nodes/{node}/bios, and the apply_configuration and factory_reset steps.
const (
	// CmdGetBIOSSettings reads the settings. Not mutating. No arguments; result BIOSSettings.
	CmdGetBIOSSettings = "get_bios_settings"
	// CmdApplyBIOSSettings applies settings, skipping those already at their value. Mutating.
	// Arguments ApplyBIOSArgs, result BIOSSettings (after the change).
	CmdApplyBIOSSettings = "apply_bios_settings"
	// CmdFactoryResetBIOS returns the settings to their defaults. Mutating. No arguments;
	// result BIOSSettings.
	CmdFactoryResetBIOS = "factory_reset_bios"
)

func init() {
	registerCommands(FeatureBIOS, CmdGetBIOSSettings, CmdApplyBIOSSettings, CmdFactoryResetBIOS)
}

// BIOS attribute types (Ironic's attribute_type).
const (
	BIOSTypeEnumeration = "Enumeration"
	BIOSTypeString      = "String"
	BIOSTypeInteger     = "Integer"
	BIOSTypeBoolean     = "Boolean"
)

// Limits on BIOS settings.
const (
	MaxBIOSSettings = 1024
	MaxBIOSNameLen  = 128
	MaxBIOSValueLen = 4096
	MaxBIOSApply    = 256
)

// BIOSSetting is one setting with Ironic's detail fields (API 1.74).
type BIOSSetting struct {
	Name            string   `json:"name"`
	Value           string   `json:"value"`
	AttributeType   string   `json:"attribute_type,omitempty"`
	AllowableValues []string `json:"allowable_values,omitempty"`
	LowerBound      *int64   `json:"lower_bound,omitempty"`
	UpperBound      *int64   `json:"upper_bound,omitempty"`
	MinLength       *int64   `json:"min_length,omitempty"`
	MaxLength       *int64   `json:"max_length,omitempty"`
	ReadOnly        bool     `json:"read_only,omitempty"`
	ResetRequired   bool     `json:"reset_required,omitempty"`
	Unique          bool     `json:"unique,omitempty"`
}

// BIOSSettingValue is one entry of apply_configuration's settings.
type BIOSSettingValue struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// ApplyBIOSArgs are apply_bios_settings's arguments (apply_configuration's args).
type ApplyBIOSArgs struct {
	Settings []BIOSSettingValue `json:"settings"`
}

// Validate checks the arguments without touching the firmware.
func (a *ApplyBIOSArgs) Validate() error {
	if len(a.Settings) == 0 {
		return fmt.Errorf("apply_bios_settings: no settings")
	}
	if len(a.Settings) > MaxBIOSApply {
		return fmt.Errorf("apply_bios_settings: %d settings, at most %d", len(a.Settings), MaxBIOSApply)
	}
	seen := map[string]bool{}
	for _, s := range a.Settings {
		if err := CheckBIOSName(s.Name); err != nil {
			return fmt.Errorf("apply_bios_settings: %w", err)
		}
		if seen[s.Name] {
			return fmt.Errorf("apply_bios_settings: setting %q given twice", s.Name)
		}
		seen[s.Name] = true
		if len(s.Value) > MaxBIOSValueLen {
			return fmt.Errorf("apply_bios_settings: setting %q: value longer than %d bytes", s.Name, MaxBIOSValueLen)
		}
		if strings.ContainsRune(s.Value, 0) {
			return fmt.Errorf("apply_bios_settings: setting %q: value contains NUL", s.Name)
		}
	}
	return nil
}

// CheckBIOSName validates a setting name: printable ASCII without '/', at most MaxBIOSNameLen.
func CheckBIOSName(name string) error {
	if name == "" {
		return fmt.Errorf("setting without a name")
	}
	if len(name) > MaxBIOSNameLen {
		return fmt.Errorf("setting name longer than %d bytes", MaxBIOSNameLen)
	}
	for _, r := range name {
		if r <= ' ' || r > '~' || r == '/' {
			return fmt.Errorf("setting name %q: only printable ASCII without spaces or '/'", name)
		}
	}
	return nil
}

// BIOSSettings is the result of every BIOS command: what the firmware holds now.
type BIOSSettings struct {
	// Backend names what read them: "efivarfs", or a vendor tool.
	Backend  string        `json:"backend"`
	Settings []BIOSSetting `json:"settings"`
	// Changed lists the settings an apply or reset changed; RebootRequired says whether the
	// firmware needs a reboot for them to take effect.
	Changed        []string `json:"changed,omitempty"`
	RebootRequired bool     `json:"reboot_required,omitempty"`
	// BootMode is "uefi" or "bios" (no EFI variables).
	BootMode string `json:"boot_mode"`
	// BootEntries are the UEFI Boot#### load options, in BootOrder first.
	BootEntries []BootEntry `json:"boot_entries,omitempty"`
	// System holds the SMBIOS facts the kernel exports.
	System *SMBIOS `json:"system,omitempty"`
}

// BootEntry is one UEFI load option (Boot####).
type BootEntry struct {
	// Number is the #### of Boot####, in hex ("0001").
	Number      string `json:"number"`
	Description string `json:"description"`
	Active      bool   `json:"active"`
	// DevicePath is the EFI device path, hex-encoded.
	DevicePath string `json:"device_path,omitempty"`
}

// SMBIOS holds the firmware and system facts of /sys/class/dmi/id.
type SMBIOS struct {
	BIOSVendor      string `json:"bios_vendor,omitempty"`
	BIOSVersion     string `json:"bios_version,omitempty"`
	BIOSDate        string `json:"bios_date,omitempty"`
	SysVendor       string `json:"sys_vendor,omitempty"`
	ProductName     string `json:"product_name,omitempty"`
	ProductVersion  string `json:"product_version,omitempty"`
	ProductSerial   string `json:"product_serial,omitempty"`
	ProductUUID     string `json:"product_uuid,omitempty"`
	ProductSKU      string `json:"product_sku,omitempty"`
	ProductFamily   string `json:"product_family,omitempty"`
	BoardVendor     string `json:"board_vendor,omitempty"`
	BoardName       string `json:"board_name,omitempty"`
	BoardSerial     string `json:"board_serial,omitempty"`
	ChassisVendor   string `json:"chassis_vendor,omitempty"`
	ChassisSerial   string `json:"chassis_serial,omitempty"`
	ChassisAssetTag string `json:"chassis_asset_tag,omitempty"`
}
