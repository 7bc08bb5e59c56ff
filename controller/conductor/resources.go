package conductor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/ferrumhq/ferrum/controller/node"
)

// nodeFor resolves the node a port or portgroup refers to; a missing node is the client's
// mistake (400), as in Ironic.
func (c *Conductor) nodeFor(ctx context.Context, uuid string) (*node.Node, error) {
	n, err := c.store.GetNode(ctx, uuid)
	if isNotFound(err) {
		return nil, node.Errorf(node.ErrInvalid, "Node %s could not be found.", uuid)
	}
	return n, err
}

// underNodeLock runs f while holding the exclusive lock of node uuid (port changes do in Ironic).
func (c *Conductor) underNodeLock(ctx context.Context, uuid string, f func() error) error {
	n, err := c.lock(ctx, uuid)
	if isNotFound(err) {
		return node.Errorf(node.ErrInvalid, "Node %s could not be found.", uuid)
	}
	if err != nil {
		return err
	}
	defer c.unlock(n.UUID)
	return f()
}

// CreatePort stores a port of an existing node.
func (c *Conductor) CreatePort(ctx context.Context, p *node.Port) (*node.Port, error) {
	p = clonePort(p)
	if p.UUID == "" {
		p.UUID = uuid.NewString()
	}
	p.Address = strings.ToLower(p.Address)
	if _, err := c.nodeFor(ctx, p.NodeUUID); err != nil {
		return nil, err
	}
	if err := c.checkPortgroup(ctx, p); err != nil {
		return nil, err
	}
	p.CreatedAt = c.cfg.Now().UTC()
	normalizePort(p)
	err := c.underNodeLock(ctx, p.NodeUUID, func() error { return c.store.CreatePort(ctx, p) })
	if err != nil {
		return nil, err
	}
	return p, nil
}

func (c *Conductor) checkPortgroup(ctx context.Context, p *node.Port) error {
	if p.PortgroupUUID == "" {
		return nil
	}
	pg, err := c.store.GetPortgroup(ctx, p.PortgroupUUID)
	if isNotFound(err) {
		return node.Errorf(node.ErrInvalid, "Portgroup %s could not be found.", p.PortgroupUUID)
	}
	if err != nil {
		return err
	}
	if pg.NodeUUID != p.NodeUUID {
		return node.Errorf(node.ErrConflict, "Port group %s and port %s are not in the same node.", pg.UUID, p.UUID)
	}
	return nil
}

// GetPort shows a port.
func (c *Conductor) GetPort(ctx context.Context, uuid string) (*node.Port, error) {
	p, err := c.store.GetPort(ctx, uuid)
	if err == nil {
		normalizePort(p)
	}
	return p, err
}

// ListPorts lists ports.
func (c *Conductor) ListPorts(ctx context.Context, q node.PortQuery) ([]*node.Port, error) {
	ps, err := c.store.ListPorts(ctx, q)
	for _, p := range ps {
		normalizePort(p)
	}
	return ps, err
}

// UpdatePort applies mutate under the owning node's lock.
func (c *Conductor) UpdatePort(ctx context.Context, id string, mutate func(p *node.Port) error) (*node.Port, error) {
	p, err := c.store.GetPort(ctx, id)
	if err != nil {
		return nil, err
	}
	var out *node.Port
	err = c.underNodeLock(ctx, p.NodeUUID, func() error {
		p, err := c.store.GetPort(ctx, id) // re-read under the lock
		if err != nil {
			return err
		}
		old := clonePort(p)
		if err := mutate(p); err != nil {
			return err
		}
		p.UUID, p.ID, p.CreatedAt = old.UUID, old.ID, old.CreatedAt
		p.Address = strings.ToLower(p.Address)
		if p.NodeUUID != old.NodeUUID {
			if _, err := c.nodeFor(ctx, p.NodeUUID); err != nil {
				return err
			}
		}
		if err := c.checkPortgroup(ctx, p); err != nil {
			return err
		}
		normalizePort(p)
		if err := c.store.SavePort(ctx, p); err != nil {
			return err
		}
		out = p
		return nil
	})
	return out, err
}

// DeletePort deletes a port under its node's lock.
func (c *Conductor) DeletePort(ctx context.Context, id string) error {
	p, err := c.store.GetPort(ctx, id)
	if err != nil {
		return err
	}
	return c.underNodeLock(ctx, p.NodeUUID, func() error { return c.store.DeletePort(ctx, p.UUID) })
}

// CreatePortgroup stores a portgroup of an existing node.
func (c *Conductor) CreatePortgroup(ctx context.Context, pg *node.Portgroup) (*node.Portgroup, error) {
	pg = clonePortgroup(pg)
	if pg.UUID == "" {
		pg.UUID = uuid.NewString()
	}
	pg.Address = strings.ToLower(pg.Address)
	if _, err := c.nodeFor(ctx, pg.NodeUUID); err != nil {
		return nil, err
	}
	pg.CreatedAt = c.cfg.Now().UTC()
	normalizePortgroup(pg)
	err := c.underNodeLock(ctx, pg.NodeUUID, func() error { return c.store.CreatePortgroup(ctx, pg) })
	if err != nil {
		return nil, err
	}
	return pg, nil
}

// GetPortgroup shows a portgroup by UUID or name.
func (c *Conductor) GetPortgroup(ctx context.Context, ident string) (*node.Portgroup, error) {
	pg, err := c.store.GetPortgroup(ctx, ident)
	if err == nil {
		normalizePortgroup(pg)
	}
	return pg, err
}

// ListPortgroups lists portgroups.
func (c *Conductor) ListPortgroups(ctx context.Context, q node.PortgroupQuery) ([]*node.Portgroup, error) {
	pgs, err := c.store.ListPortgroups(ctx, q)
	for _, pg := range pgs {
		normalizePortgroup(pg)
	}
	return pgs, err
}

// UpdatePortgroup applies mutate under the owning node's lock.
func (c *Conductor) UpdatePortgroup(ctx context.Context, ident string, mutate func(pg *node.Portgroup) error) (*node.Portgroup, error) {
	pg, err := c.store.GetPortgroup(ctx, ident)
	if err != nil {
		return nil, err
	}
	var out *node.Portgroup
	err = c.underNodeLock(ctx, pg.NodeUUID, func() error {
		pg, err := c.store.GetPortgroup(ctx, pg.UUID)
		if err != nil {
			return err
		}
		old := clonePortgroup(pg)
		if err := mutate(pg); err != nil {
			return err
		}
		pg.UUID, pg.ID, pg.CreatedAt = old.UUID, old.ID, old.CreatedAt
		pg.Address = strings.ToLower(pg.Address)
		if pg.NodeUUID != old.NodeUUID {
			if _, err := c.nodeFor(ctx, pg.NodeUUID); err != nil {
				return err
			}
		}
		normalizePortgroup(pg)
		if err := c.store.SavePortgroup(ctx, pg); err != nil {
			return err
		}
		out = pg
		return nil
	})
	return out, err
}

// DeletePortgroup deletes a portgroup that has no ports.
func (c *Conductor) DeletePortgroup(ctx context.Context, ident string) error {
	pg, err := c.store.GetPortgroup(ctx, ident)
	if err != nil {
		return err
	}
	return c.underNodeLock(ctx, pg.NodeUUID, func() error {
		ports, err := c.store.ListPorts(ctx, node.PortQuery{PortgroupUUID: pg.UUID, Page: node.Page{Limit: 1}})
		if err != nil {
			return err
		}
		if len(ports) > 0 {
			return node.Errorf(node.ErrConflict, "Portgroup %s is not empty: it still has ports.", pg.UUID)
		}
		return c.store.DeletePortgroup(ctx, pg.UUID)
	})
}

// CreateAllocation stores an allocation and matches it to an available node with its resource
// class and all its traits (among candidate_nodes when given). Unlike Ironic, matching is done
// before the call returns, so the answer already says active or error.
func (c *Conductor) CreateAllocation(ctx context.Context, a *node.Allocation) (*node.Allocation, error) {
	a = cloneAllocation(a)
	if a.UUID == "" {
		a.UUID = uuid.NewString()
	}
	if a.ResourceClass == "" {
		return nil, node.Errorf(node.ErrInvalid, "Either resource_class or node must be set when creating an allocation.")
	}
	a.State = node.AllocationAllocating
	a.CreatedAt = c.cfg.Now().UTC()
	normalizeAllocation(a)
	if err := c.store.CreateAllocation(ctx, a); err != nil {
		return nil, err
	}
	if err := c.allocate(ctx, a); err != nil {
		return nil, err
	}
	return a, nil
}

func (c *Conductor) allocate(ctx context.Context, a *node.Allocation) error {
	off, free := false, false
	var match *node.Node
	err := c.forEachNode(ctx, node.NodeQuery{ProvisionState: node.Available, Maintenance: &off,
		Associated: &free, ResourceClass: a.ResourceClass}, func(n *node.Node) error {
		if match != nil || !c.allocationFits(a, n) {
			return nil
		}
		return c.withLock(ctx, n.UUID, func(n *node.Node) error {
			if n.InstanceUUID != "" || n.AllocationUUID != "" || n.ProvisionState != node.Available || n.Maintenance {
				return nil // taken meanwhile
			}
			n.AllocationUUID, n.InstanceUUID = a.UUID, a.UUID
			if err := c.save(ctx, n); err != nil {
				return err
			}
			match = n
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("allocate %s: %w", a.UUID, err)
	}
	if match != nil {
		a.State, a.NodeUUID = node.AllocationActive, match.UUID
	} else {
		a.State = node.AllocationError
		a.LastError = fmt.Sprintf("Failed to process allocation %s: no available nodes match the resource class %s", a.UUID, a.ResourceClass)
		if len(a.Traits) > 0 {
			a.LastError += " and traits " + strings.Join(a.Traits, ", ")
		}
		a.LastError += "."
	}
	a.UpdatedAt = c.cfg.Now().UTC()
	return c.store.SaveAllocation(ctx, a)
}

func (c *Conductor) allocationFits(a *node.Allocation, n *node.Node) bool {
	if len(a.CandidateNodes) > 0 && !slices.Contains(a.CandidateNodes, n.UUID) && (n.Name == "" || !slices.Contains(a.CandidateNodes, n.Name)) {
		return false
	}
	for _, t := range a.Traits {
		if !slices.Contains(n.Traits, t) {
			return false
		}
	}
	return true
}

// GetAllocation shows an allocation by UUID or name.
func (c *Conductor) GetAllocation(ctx context.Context, ident string) (*node.Allocation, error) {
	return c.store.GetAllocation(ctx, ident)
}

// ListAllocations lists allocations.
func (c *Conductor) ListAllocations(ctx context.Context, q node.AllocationQuery) ([]*node.Allocation, error) {
	return c.store.ListAllocations(ctx, q)
}

// DeleteAllocation deletes an allocation and frees its node, unless the node is deployed
// (Ironic refuses that outside maintenance).
func (c *Conductor) DeleteAllocation(ctx context.Context, ident string) error {
	a, err := c.store.GetAllocation(ctx, ident)
	if err != nil {
		return err
	}
	if a.NodeUUID != "" {
		n, err := c.lock(ctx, a.NodeUUID)
		switch {
		case isNotFound(err):
		case err != nil:
			return err
		default:
			defer c.unlock(n.UUID)
			if n.ProvisionState != node.Available && n.ProvisionState != node.Manageable && !n.Maintenance {
				return node.Errorf(node.ErrConflict, "Cannot remove allocation %s from node %s in provision state %s.", a.UUID, n.UUID, n.ProvisionState)
			}
			if n.AllocationUUID == a.UUID {
				n.AllocationUUID = ""
				if n.InstanceUUID == a.UUID {
					n.InstanceUUID = ""
				}
				if err := c.save(ctx, n); err != nil {
					return err
				}
			}
		}
	}
	if err := c.store.DeleteAllocation(ctx, a.UUID); err != nil && !errors.Is(err, node.ErrNotFound) {
		return err
	}
	return nil
}

func clonePort(p *node.Port) *node.Port {
	c := *p
	c.LocalLinkConnection = cloneMap(p.LocalLinkConnection)
	c.Extra = cloneMap(p.Extra)
	c.InternalInfo = cloneMap(p.InternalInfo)
	return &c
}

func clonePortgroup(pg *node.Portgroup) *node.Portgroup {
	c := *pg
	c.Properties = cloneMap(pg.Properties)
	c.Extra = cloneMap(pg.Extra)
	c.InternalInfo = cloneMap(pg.InternalInfo)
	return &c
}

func cloneAllocation(a *node.Allocation) *node.Allocation {
	c := *a
	c.Traits = slices.Clone(a.Traits)
	c.CandidateNodes = slices.Clone(a.CandidateNodes)
	c.Extra = cloneMap(a.Extra)
	return &c
}

// cloneMap copies the top level; nested values are replaced wholesale by callers, never edited.
func cloneMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func normalizePort(p *node.Port) {
	for _, m := range []*map[string]any{&p.LocalLinkConnection, &p.Extra, &p.InternalInfo} {
		if *m == nil {
			*m = map[string]any{}
		}
	}
}

func normalizePortgroup(pg *node.Portgroup) {
	for _, m := range []*map[string]any{&pg.Properties, &pg.Extra, &pg.InternalInfo} {
		if *m == nil {
			*m = map[string]any{}
		}
	}
}

func normalizeAllocation(a *node.Allocation) {
	if a.Extra == nil {
		a.Extra = map[string]any{}
	}
	if a.Traits == nil {
		a.Traits = []string{}
	}
	if a.CandidateNodes == nil {
		a.CandidateNodes = []string{}
	}
}

// UpdateAllocation applies mutate (name, extra) to an allocation; identity and matching
// fields stay as stored.
func (c *Conductor) UpdateAllocation(ctx context.Context, ident string, mutate func(a *node.Allocation) error) (*node.Allocation, error) {
	a, err := c.store.GetAllocation(ctx, ident)
	if err != nil {
		return nil, err
	}
	old := cloneAllocation(a)
	if err := mutate(a); err != nil {
		return nil, err
	}
	a.UUID, a.ID, a.CreatedAt, a.NodeUUID, a.State = old.UUID, old.ID, old.CreatedAt, old.NodeUUID, old.State
	a.UpdatedAt = c.cfg.Now().UTC()
	normalizeAllocation(a)
	if err := c.store.SaveAllocation(ctx, a); err != nil {
		return nil, err
	}
	return a, nil
}
