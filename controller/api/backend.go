package api

import (
	"context"
	"time"

	"github.com/ferrumhq/ferrum/controller/conductor"
	"github.com/ferrumhq/ferrum/controller/node"
)

// Backend is what the API needs from the conductor. *conductor.Conductor implements it.
// Every error is a *node.Error, *node.LockedError, *node.InvalidStateError or wraps one of the
// node sentinels; anything else is a 500.
type Backend interface {
	// CreateNode validates the driver and interface names, fills defaults (uuid, enroll,
	// default interfaces, resource class) and stores the node.
	CreateNode(ctx context.Context, n *node.Node) (*node.Node, error)
	GetNode(ctx context.Context, ident string) (*node.Node, error)
	ListNodes(ctx context.Context, q node.NodeQuery) ([]*node.Node, error)
	// UpdateNode locks the node, checks that the state allows an update, calls mutate on a
	// copy, re-validates driver/interfaces and saves.
	UpdateNode(ctx context.Context, ident string, mutate func(n *node.Node) error) (*node.Node, error)
	DeleteNode(ctx context.Context, ident string) error

	SetPowerState(ctx context.Context, ident, target string, timeout time.Duration) error
	SetProvisionState(ctx context.Context, ident string, req conductor.ProvisionRequest) error
	SetMaintenance(ctx context.Context, ident string, on bool, reason string) error
	Validate(ctx context.Context, ident string) (map[string]conductor.ValidateResult, error)
	SetTargetRAIDConfig(ctx context.Context, ident string, cfg map[string]any) error

	CreatePort(ctx context.Context, p *node.Port) (*node.Port, error)
	GetPort(ctx context.Context, uuid string) (*node.Port, error)
	ListPorts(ctx context.Context, q node.PortQuery) ([]*node.Port, error)
	UpdatePort(ctx context.Context, uuid string, mutate func(p *node.Port) error) (*node.Port, error)
	DeletePort(ctx context.Context, uuid string) error

	CreatePortgroup(ctx context.Context, pg *node.Portgroup) (*node.Portgroup, error)
	GetPortgroup(ctx context.Context, ident string) (*node.Portgroup, error)
	ListPortgroups(ctx context.Context, q node.PortgroupQuery) ([]*node.Portgroup, error)
	UpdatePortgroup(ctx context.Context, ident string, mutate func(pg *node.Portgroup) error) (*node.Portgroup, error)
	DeletePortgroup(ctx context.Context, ident string) error

	// CreateAllocation stores the allocation and matches it to an available node (resource
	// class, traits, candidate nodes); the result is visible in its state.
	CreateAllocation(ctx context.Context, a *node.Allocation) (*node.Allocation, error)
	GetAllocation(ctx context.Context, ident string) (*node.Allocation, error)
	ListAllocations(ctx context.Context, q node.AllocationQuery) ([]*node.Allocation, error)
	DeleteAllocation(ctx context.Context, ident string) error

	Drivers(ctx context.Context) ([]conductor.DriverInfo, error)
	ListConductors(ctx context.Context) ([]*node.Conductor, error)
	GetConductor(ctx context.Context, hostname string) (*node.Conductor, error)
}
