package conductor

import (
	"context"
	"time"

	"github.com/ferrumhq/ferrum/controller/node"
	"github.com/ferrumhq/ferrum/shared/proto"
)

// Store is the persistence the conductor needs. Implementations: store/sqlite (and later
// store/postgres); store/storetest is the conformance suite every implementation passes.
//
// Errors: a missing row is node.ErrNotFound (wrapped in a *node.Error with Ironic's message), a
// uniqueness violation is node.ErrConflict, a reservation held by someone else is a
// *node.LockedError, and a write by a holder that lost its reservation is node.ErrLockLost.
type Store interface {
	// CreateNode inserts n (UUID set by the caller) and fills n.ID. Duplicate uuid or name →
	// ErrConflict ("A node with name X already exists." / "A node with UUID X already exists.").
	CreateNode(ctx context.Context, n *node.Node) error
	// GetNode finds a node by UUID, or by name when ident is not a UUID.
	GetNode(ctx context.Context, ident string) (*node.Node, error)
	ListNodes(ctx context.Context, q node.NodeQuery) ([]*node.Node, error)
	// SaveNode writes every field of n except the reservation, only while owner holds the
	// node's reservation (else ErrLockLost). Sets n.UpdatedAt.
	SaveNode(ctx context.Context, n *node.Node, owner string) error
	// SaveNodeWithEvent is SaveNode plus, in the same transaction, ev appended to the power
	// event outbox as pending (ev.ID, Status and CreatedAt are set); the node's earlier
	// pending events for the same instance become superseded.
	SaveNodeWithEvent(ctx context.Context, n *node.Node, owner string, ev *node.PowerEvent) error
	// DeleteNode removes a node reserved by owner with its ports and portgroups.
	DeleteNode(ctx context.Context, uuid, owner string) error

	// ReserveNode takes the node's exclusive lock for owner until the given time, atomically:
	// only when it is free or its reservation expired. Returns the node as stored.
	ReserveNode(ctx context.Context, ident, owner string, until time.Time) (*node.Node, error)
	// ReleaseNode drops owner's reservation; releasing a lock not held is not an error.
	ReleaseNode(ctx context.Context, uuid, owner string) error
	// RenewReservations extends every reservation owner holds; returns how many.
	RenewReservations(ctx context.Context, owner string, until time.Time) (int, error)
	// ReleaseReservations drops every reservation owner holds (start-up after a crash).
	ReleaseReservations(ctx context.Context, owner string) (int, error)

	CreatePort(ctx context.Context, p *node.Port) error // duplicate address or uuid → ErrConflict
	GetPort(ctx context.Context, uuid string) (*node.Port, error)
	ListPorts(ctx context.Context, q node.PortQuery) ([]*node.Port, error)
	SavePort(ctx context.Context, p *node.Port) error
	DeletePort(ctx context.Context, uuid string) error

	CreatePortgroup(ctx context.Context, pg *node.Portgroup) error // duplicate name/address/uuid → ErrConflict
	GetPortgroup(ctx context.Context, ident string) (*node.Portgroup, error)
	ListPortgroups(ctx context.Context, q node.PortgroupQuery) ([]*node.Portgroup, error)
	SavePortgroup(ctx context.Context, pg *node.Portgroup) error
	DeletePortgroup(ctx context.Context, uuid string) error

	CreateAllocation(ctx context.Context, a *node.Allocation) error // duplicate name/uuid → ErrConflict
	GetAllocation(ctx context.Context, ident string) (*node.Allocation, error)
	ListAllocations(ctx context.Context, q node.AllocationQuery) ([]*node.Allocation, error)
	SaveAllocation(ctx context.Context, a *node.Allocation) error
	DeleteAllocation(ctx context.Context, uuid string) error

	// RegisterConductor inserts or refreshes a conductor row (online, updated_at = now).
	RegisterConductor(ctx context.Context, c *node.Conductor) error
	// UnregisterConductor marks it offline.
	UnregisterConductor(ctx context.Context, hostname string) error
	GetConductor(ctx context.Context, hostname string) (*node.Conductor, error)
	ListConductors(ctx context.Context) ([]*node.Conductor, error)
}

// Outcome says how a driver operation ended: finished, or waiting for an external callback
// (an agent), in which case the node moves to the matching *wait state.
type Outcome int

const (
	// Done: the operation finished; the node moves on.
	Done Outcome = iota
	// Wait: the operation continues out of band; the node waits (with a timeout).
	Wait
)

// Power is a hardware type's power interface.
type Power interface {
	Validate(ctx context.Context, n *node.Node) error
	PowerState(ctx context.Context, n *node.Node) (string, error)
	// SetPowerState drives the machine to target (node.PowerOn, PowerOff, Rebooting,
	// SoftRebooting, SoftPowerOff) and returns once it has converged or timeout passed.
	SetPowerState(ctx context.Context, n *node.Node, target string, timeout time.Duration) error
}

// Management sets and reads the boot device. Implementations may record what they need in
// n.DriverInternalInfo; the conductor saves the node after a successful call.
type Management interface {
	Validate(ctx context.Context, n *node.Node) error
	// SupportedBootDevices lists the devices SetBootDevice accepts (Ironic's names: pxe, disk,
	// cdrom, bios, safe, …).
	SupportedBootDevices(ctx context.Context, n *node.Node) ([]string, error)
	SetBootDevice(ctx context.Context, n *node.Node, device string, persistent bool) error
	GetBootDevice(ctx context.Context, n *node.Node) (BootDevice, error)
}

// BootDevice is a node's boot device as its BMC reports it.
type BootDevice struct {
	Device     string // "" when unknown (null on the API)
	Persistent *bool  // nil when unknown
}

// Deploy writes and removes instances and runs cleaning.
type Deploy interface {
	Validate(ctx context.Context, n *node.Node) error
	Deploy(ctx context.Context, n *node.Node) (Outcome, error)
	TearDown(ctx context.Context, n *node.Node) error
	// Clean runs automated cleaning (steps nil) or the given manual clean steps.
	Clean(ctx context.Context, n *node.Node, steps []node.Step) (Outcome, error)
	// Adopt checks that an already deployed node can be taken over.
	Adopt(ctx context.Context, n *node.Node) error
}

// Inspect gathers hardware facts.
type Inspect interface {
	Validate(ctx context.Context, n *node.Node) error
	Inspect(ctx context.Context, n *node.Node) (Outcome, error)
}

// Rescue boots a rescue ramdisk on a deployed node.
type Rescue interface {
	Validate(ctx context.Context, n *node.Node) error
	Rescue(ctx context.Context, n *node.Node) (Outcome, error)
	Unrescue(ctx context.Context, n *node.Node) error
}

// Validator is any interface that can only validate (boot, raid, bios, console, …).
type Validator interface {
	Validate(ctx context.Context, n *node.Node) error
}

// Driver is a node's set of interface implementations, built by a HardwareType from the
// interface names on the node. A nil field means the interface is unsupported ("no-*").
type Driver struct {
	Power      Power
	Management Management
	Deploy     Deploy
	Inspect    Inspect
	Rescue     Rescue
	Boot       Validator
	Raid       Validator
	Bios       Validator
	Console    Validator
}

// HardwareType is one of Ironic's hardware types (a "driver" on the API).
type HardwareType interface {
	Name() string
	// Supported lists the accepted implementation names for each interface type; the first
	// name of each list is the default.
	Supported() map[string][]string
	// Driver builds the implementations for the names chosen on n.
	Driver(n *node.Node) (*Driver, error)
}

// Notifier hears of every observed or commanded power change of a node: power actions, and
// what the power sync and the power failure recovery record. It is called after the change
// (and, with Config.PowerEvents, its outbox row) was committed, from workers and sync passes,
// so it must return quickly: controller/nova only wakes its delivery loop.
type Notifier interface {
	PowerChanged(ctx context.Context, n *node.Node, state string)
}

type nopNotifier struct{}

func (nopNotifier) PowerChanged(context.Context, *node.Node, string) {}

// PropertiesDescriber is an optional HardwareType ability: the driver_info keys it reads, each
// with a description that says whether it is required.
type PropertiesDescriber interface {
	Properties() map[string]string
}

// Agents is the registry of ramdisk agents' tunnels (controller/agentlink implements it).
type Agents interface {
	// Run sends cmd to the agent of node and waits for its result, calling progress for each
	// report. A nil error means the agent answered (Result.Error may hold its failure); an
	// error carries a *proto.Error code (not_connected, link_lost, lost, unsupported, …).
	Run(ctx context.Context, nodeUUID string, cmd proto.Command, progress func(proto.Progress)) (proto.Result, error)
	// BootParams mints a node's one-time enrollment token and returns the agent's kernel
	// command-line parameters. The result holds a secret.
	BootParams(ctx context.Context, nodeUUID string) (string, error)
}

// AgentLinkStore is an optional ability of a Store: the records of nodes' agent links, which
// agentlink writes and the conductor attaches to the nodes it returns (node.Node.Agent).
type AgentLinkStore interface {
	// GetAgentLinks returns the records of the given nodes; nodes without one are absent.
	GetAgentLinks(ctx context.Context, uuids []string) (map[string]*node.AgentLink, error)
	// UpdateAgentLinks merges each record into its node's (node.AgentLink.Merge); records of
	// nodes that do not exist are dropped.
	UpdateAgentLinks(ctx context.Context, links []node.AgentLink) error
}
