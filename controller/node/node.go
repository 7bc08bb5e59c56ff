// Package node is the controller's domain model: nodes, ports, portgroups, allocations and
// conductors, Ironic's provision state machine, and the typed errors every layer returns.
//
// It imports only the standard library; everything under controller/ may import it.
package node

import (
	"encoding/json"
	"time"
)

// Power states, with Ironic's wire strings. The empty string is "unknown" (null on the wire).
const (
	PowerOn            = "power on"
	PowerOff           = "power off"
	Rebooting          = "rebooting"
	SoftRebooting      = "soft rebooting"
	SoftPowerOff       = "soft power off"
	PowerError         = "error"
	PowerUnknown       = ""
	FaultPowerFailure  = "power failure"
	FaultCleanFailure  = "clean failure"
	FaultRescueAbort   = "rescue abort failure"
	FaultServiceFailed = "service failure"
)

// Step is one clean/deploy/service step as Ironic shapes it.
type Step map[string]any

// Node is a bare-metal machine. JSON names are Ironic's; the API decides which are visible at
// the requested microversion. Maps are never nil after Normalize.
type Node struct {
	ID   int64  `json:"-"`
	UUID string `json:"uuid"`
	Name string `json:"name,omitempty"`

	Driver             string         `json:"driver"`
	DriverInfo         map[string]any `json:"driver_info"`
	DriverInternalInfo map[string]any `json:"driver_internal_info"`
	Interfaces                        // flattened: boot_interface, power_interface, …

	Properties   map[string]any `json:"properties"`
	Extra        map[string]any `json:"extra"`
	InstanceInfo map[string]any `json:"instance_info"`
	InstanceUUID string         `json:"instance_uuid,omitempty"`
	NetworkData  map[string]any `json:"network_data"`

	ProvisionState       State     `json:"provision_state"`
	TargetProvisionState State     `json:"target_provision_state,omitempty"`
	ProvisionUpdatedAt   time.Time `json:"provision_updated_at,omitzero"`
	PowerState           string    `json:"power_state,omitempty"`
	TargetPowerState     string    `json:"target_power_state,omitempty"`
	LastError            string    `json:"last_error,omitempty"`

	Maintenance       bool   `json:"maintenance"`
	MaintenanceReason string `json:"maintenance_reason,omitempty"`
	Fault             string `json:"fault,omitempty"`

	// Reservation is the lock holder (a conductor host name), empty when unlocked.
	Reservation        string    `json:"reservation,omitempty"`
	ReservationExpires time.Time `json:"-"`

	ConductorGroup string   `json:"conductor_group"`
	ResourceClass  string   `json:"resource_class,omitempty"`
	Traits         []string `json:"traits"`
	Owner          string   `json:"owner,omitempty"`
	Lessee         string   `json:"lessee,omitempty"`
	Description    string   `json:"description,omitempty"`
	ChassisUUID    string   `json:"chassis_uuid,omitempty"`
	AllocationUUID string   `json:"allocation_uuid,omitempty"`
	Shard          string   `json:"shard,omitempty"`

	AutomatedClean   *bool          `json:"automated_clean,omitempty"`
	Protected        bool           `json:"protected"`
	ProtectedReason  string         `json:"protected_reason,omitempty"`
	Retired          bool           `json:"retired"`
	RetiredReason    string         `json:"retired_reason,omitempty"`
	ConsoleEnabled   bool           `json:"console_enabled"`
	BootMode         string         `json:"boot_mode,omitempty"`
	SecureBoot       *bool          `json:"secure_boot,omitempty"`
	RaidConfig       map[string]any `json:"raid_config"`
	TargetRaidConfig map[string]any `json:"target_raid_config"`

	CleanStep   Step `json:"clean_step"`
	DeployStep  Step `json:"deploy_step"`
	ServiceStep Step `json:"service_step"`

	InspectionStartedAt  time.Time `json:"inspection_started_at,omitzero"`
	InspectionFinishedAt time.Time `json:"inspection_finished_at,omitzero"`

	// Inventory is the last inspection result (Ironic ≥ 1.81 serves it separately).
	Inventory json.RawMessage `json:"inventory,omitempty"`

	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`

	// Agent is what is known of the node's agent link; filled on reads, never stored with
	// the node (the store keeps it beside it). Nil when the node never had an agent.
	Agent *AgentLink `json:"-"`
}

// Interfaces holds the interface implementation chosen for each of Ironic's interface types.
type Interfaces struct {
	Bios       string `json:"bios_interface"`
	Boot       string `json:"boot_interface"`
	Console    string `json:"console_interface"`
	Deploy     string `json:"deploy_interface"`
	Firmware   string `json:"firmware_interface"`
	Inspect    string `json:"inspect_interface"`
	Management string `json:"management_interface"`
	Network    string `json:"network_interface"`
	Power      string `json:"power_interface"`
	Raid       string `json:"raid_interface"`
	Rescue     string `json:"rescue_interface"`
	Storage    string `json:"storage_interface"`
	Vendor     string `json:"vendor_interface"`
}

// InterfaceTypes lists Ironic's interface types in a stable order.
var InterfaceTypes = []string{"bios", "boot", "console", "deploy", "firmware", "inspect",
	"management", "network", "power", "raid", "rescue", "storage", "vendor"}

// Iface returns the implementation chosen for interface type t ("power", "boot", …).
func (i *Interfaces) Iface(t string) string {
	if p := i.field(t); p != nil {
		return *p
	}
	return ""
}

// SetIface sets the implementation for interface type t; false for an unknown type.
func (i *Interfaces) SetIface(t, v string) bool {
	p := i.field(t)
	if p == nil {
		return false
	}
	*p = v
	return true
}

func (i *Interfaces) field(t string) *string {
	switch t {
	case "bios":
		return &i.Bios
	case "boot":
		return &i.Boot
	case "console":
		return &i.Console
	case "deploy":
		return &i.Deploy
	case "firmware":
		return &i.Firmware
	case "inspect":
		return &i.Inspect
	case "management":
		return &i.Management
	case "network":
		return &i.Network
	case "power":
		return &i.Power
	case "raid":
		return &i.Raid
	case "rescue":
		return &i.Rescue
	case "storage":
		return &i.Storage
	case "vendor":
		return &i.Vendor
	}
	return nil
}

// Normalize replaces nil maps and slices with empty ones so the wire shows {} and [].
func (n *Node) Normalize() {
	for _, m := range []*map[string]any{&n.DriverInfo, &n.DriverInternalInfo, &n.Properties,
		&n.Extra, &n.InstanceInfo, &n.NetworkData, &n.RaidConfig, &n.TargetRaidConfig} {
		if *m == nil {
			*m = map[string]any{}
		}
	}
	for _, s := range []*Step{&n.CleanStep, &n.DeployStep, &n.ServiceStep} {
		if *s == nil {
			*s = Step{}
		}
	}
	if n.Traits == nil {
		n.Traits = []string{}
	}
}

// Clone returns a deep copy (through JSON, which every field survives).
func (n *Node) Clone() *Node {
	b, err := json.Marshal(n)
	if err != nil {
		panic("node: clone: " + err.Error())
	}
	c := new(Node)
	if err := json.Unmarshal(b, c); err != nil {
		panic("node: clone: " + err.Error())
	}
	c.ID = n.ID
	c.ReservationExpires = n.ReservationExpires
	if n.Agent != nil {
		a := *n.Agent
		c.Agent = &a
	}
	return c
}

// Port is a NIC of a node.
type Port struct {
	ID                  int64          `json:"-"`
	UUID                string         `json:"uuid"`
	NodeUUID            string         `json:"node_uuid"`
	Address             string         `json:"address"`
	PortgroupUUID       string         `json:"portgroup_uuid,omitempty"`
	PXEEnabled          bool           `json:"pxe_enabled"`
	LocalLinkConnection map[string]any `json:"local_link_connection"`
	PhysicalNetwork     string         `json:"physical_network,omitempty"`
	Extra               map[string]any `json:"extra"`
	InternalInfo        map[string]any `json:"internal_info"`
	IsSmartNIC          bool           `json:"is_smartnic"`
	Name                string         `json:"name,omitempty"`
	CreatedAt           time.Time      `json:"created_at"`
	UpdatedAt           time.Time      `json:"updated_at,omitzero"`
}

// Portgroup bonds ports of one node.
type Portgroup struct {
	ID                       int64          `json:"-"`
	UUID                     string         `json:"uuid"`
	NodeUUID                 string         `json:"node_uuid"`
	Name                     string         `json:"name,omitempty"`
	Address                  string         `json:"address,omitempty"`
	Mode                     string         `json:"mode,omitempty"`
	Properties               map[string]any `json:"properties"`
	Extra                    map[string]any `json:"extra"`
	InternalInfo             map[string]any `json:"internal_info"`
	StandalonePortsSupported bool           `json:"standalone_ports_supported"`
	CreatedAt                time.Time      `json:"created_at"`
	UpdatedAt                time.Time      `json:"updated_at,omitzero"`
}

// Allocation states.
const (
	AllocationAllocating = "allocating"
	AllocationActive     = "active"
	AllocationError      = "error"
)

// Allocation is a request for a node with a resource class and traits.
type Allocation struct {
	ID             int64          `json:"-"`
	UUID           string         `json:"uuid"`
	Name           string         `json:"name,omitempty"`
	NodeUUID       string         `json:"node_uuid,omitempty"`
	ResourceClass  string         `json:"resource_class"`
	Traits         []string       `json:"traits"`
	CandidateNodes []string       `json:"candidate_nodes"`
	State          string         `json:"state"`
	LastError      string         `json:"last_error,omitempty"`
	Extra          map[string]any `json:"extra"`
	Owner          string         `json:"owner,omitempty"`
	CreatedAt      time.Time      `json:"created_at"`
	UpdatedAt      time.Time      `json:"updated_at,omitzero"`
}

// Conductor is a registered controller process.
type Conductor struct {
	Hostname       string    `json:"hostname"`
	ConductorGroup string    `json:"conductor_group"`
	Drivers        []string  `json:"drivers"`
	Online         bool      `json:"alive"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
}
