package proto

import (
	"encoding/json"
	"fmt"
)

// Cleaning commands (v3, FeatureClean).
const (
	// CmdGetCleanSteps lists the agent's clean steps with Ironic's names, interfaces and default
	// priorities. Not mutating. No arguments; result CleanSteps.
	CmdGetCleanSteps = "get_clean_steps"
	// CmdEraseDevicesMetadata erases partition tables (both GPT copies) and filesystem and RAID
	// signatures at both ends of each disk and partition. Mutating. Arguments EraseArgs,
	// result EraseResult.
	CmdEraseDevicesMetadata = "erase_devices_metadata"
	// CmdEraseDevices erases whole disks: the device's secure erase (NVMe format, secure
	// discard) where it has one, else a discard if allowed, else zeros (express: the metadata
	// only). Mutating. Arguments EraseArgs, result EraseResult; progress per device and byte.
	CmdEraseDevices = "erase_devices"
)

func init() {
	registerCommands(FeatureClean, CmdGetCleanSteps, CmdEraseDevicesMetadata, CmdEraseDevices)
}

// Ironic's step interfaces.
const (
	StepInterfaceDeploy = "deploy"
	StepInterfaceRAID   = "raid"
	StepInterfaceBIOS   = "bios"
)

// CleanStep is one step as Ironic caches it (agent_cached_clean_steps), plus the agent command
// that runs it. Priority 0 steps run only in manual cleaning; automated cleaning runs the
// others, highest priority first. The conductor may override priorities ([deploy]
// erase_devices_priority and friends).
type CleanStep struct {
	Step            string `json:"step"`
	Interface       string `json:"interface"`
	Priority        int    `json:"priority"`
	Abortable       bool   `json:"abortable"`
	RebootRequested bool   `json:"reboot_requested"`
	// ArgsInfo describes the step's arguments, as Ironic's argsinfo.
	ArgsInfo map[string]StepArg `json:"argsinfo,omitempty"`
	// Command is the agent command that runs the step. The controller builds its arguments from
	// CommandArgs, the step's args and the node (create_raid takes the node's
	// target_raid_config).
	Command string `json:"command"`
	// CommandArgs are fixed arguments of Command for this step (erase_devices_express is
	// erase_devices with {"express": true}).
	CommandArgs json.RawMessage `json:"command_args,omitempty"`
}

// StepArg describes one argument of a step.
type StepArg struct {
	Description string `json:"description"`
	Required    bool   `json:"required"`
}

// CleanSteps is get_clean_steps's result.
type CleanSteps struct {
	Steps []CleanStep `json:"clean_steps"`
}

// Ironic's (ironic-python-agent's) default clean step priorities.
const (
	PriorityEraseDevicesMetadata = 99
	PriorityEraseDevices         = 10
)

// DefaultCleanSteps returns the steps of this protocol version, with the names, interfaces and
// default priorities ironic-python-agent's generic hardware manager and Ironic's agent RAID
// and BIOS interfaces give them.
func DefaultCleanSteps() []CleanStep {
	return []CleanStep{
		{Step: "erase_devices_metadata", Interface: StepInterfaceDeploy, Priority: PriorityEraseDevicesMetadata,
			Abortable: true, Command: CmdEraseDevicesMetadata},
		{Step: "erase_devices", Interface: StepInterfaceDeploy, Priority: PriorityEraseDevices,
			Abortable: true, Command: CmdEraseDevices},
		{Step: "erase_devices_express", Interface: StepInterfaceDeploy, Priority: 0,
			Abortable: true, Command: CmdEraseDevices, CommandArgs: json.RawMessage(`{"express":true}`)},
		{Step: "delete_configuration", Interface: StepInterfaceRAID, Priority: 0, Abortable: true, Command: CmdDeleteRAID},
		{Step: "create_configuration", Interface: StepInterfaceRAID, Priority: 0, Abortable: true, Command: CmdCreateRAID,
			ArgsInfo: map[string]StepArg{
				"create_root_volume":     {Description: "create the root volume of target_raid_config", Required: false},
				"create_nonroot_volumes": {Description: "create the other volumes of target_raid_config", Required: false},
			}},
		{Step: "apply_configuration", Interface: StepInterfaceBIOS, Priority: 0, Command: CmdApplyBIOSSettings,
			ArgsInfo: map[string]StepArg{"settings": {Description: "a list of {name, value} BIOS settings", Required: true}}},
		{Step: "factory_reset", Interface: StepInterfaceBIOS, Priority: 0, Command: CmdFactoryResetBIOS},
	}
}

// Erase methods, as reported per device.
const (
	// EraseSecureDiscard: the device erased itself (BLKSECDISCARD).
	EraseSecureDiscard = "secure_discard"
	// EraseSecureErase: a vendor tool's secure erase (ATA security erase, NVMe format).
	EraseSecureErase = "secure_erase"
	// EraseDiscard: the device discarded every block (BLKDISCARD); only on request.
	EraseDiscard = "discard"
	// EraseZero: every byte overwritten with zeros.
	EraseZero = "zero"
	// EraseMetadata: signatures and partition tables erased (erase_devices_metadata).
	EraseMetadata = "metadata"
)

// MaxEraseDevices bounds EraseArgs.Devices.
const MaxEraseDevices = 256

// EraseArgs are erase_devices' and erase_devices_metadata's arguments.
type EraseArgs struct {
	// Devices to erase (disks or files); empty: every disk of the node.
	Devices []string `json:"devices,omitempty"`
	// AllowDiscard lets erase_devices use a plain discard when the device cannot erase
	// securely (fast on SSDs, but the data may remain readable to the firmware).
	AllowDiscard bool `json:"allow_discard,omitempty"`
	// SkipReadOnly skips read-only devices instead of failing (Ironic's erase_skip_read_only).
	SkipReadOnly bool `json:"skip_read_only,omitempty"`
	// Express (erase_devices_express): erase with the device's own secure erase or a discard
	// where it has one, else only the metadata; never overwrite whole disks.
	Express bool `json:"express,omitempty"`
}

// Validate checks the arguments without touching the disks.
func (a *EraseArgs) Validate() error {
	if len(a.Devices) > MaxEraseDevices {
		return fmt.Errorf("erase: %d devices, at most %d", len(a.Devices), MaxEraseDevices)
	}
	seen := map[string]bool{}
	for _, d := range a.Devices {
		if err := checkDevicePath("erase: device", d, true); err != nil {
			return err
		}
		if seen[d] {
			return fmt.Errorf("erase: device %q given twice", d)
		}
		seen[d] = true
	}
	return nil
}

// ErasedDevice is one device's outcome.
type ErasedDevice struct {
	Device string `json:"device"`
	// Method is one of the Erase* constants; Skipped says why nothing was done.
	Method  string `json:"method,omitempty"`
	Skipped string `json:"skipped,omitempty"`
	// Bytes is the device's size; Regions the number of areas zeroed (metadata erasure).
	Bytes   int64 `json:"bytes"`
	Regions int   `json:"regions,omitempty"`
	// Signatures names what was found and erased (gpt, dos, ext4, xfs, linux_raid_member...).
	Signatures []string `json:"signatures,omitempty"`
	DurationMs int64    `json:"duration_ms"`
}

// EraseResult is the erase commands' result.
type EraseResult struct {
	Devices []ErasedDevice `json:"devices"`
}
