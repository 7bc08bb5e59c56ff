package conductor

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/ferrumhq/ferrum/controller/node"
)

// CreateNode validates the driver and interface names, fills Ironic's defaults and stores n.
// n.ProvisionState may be preset to available (API < 1.11); anything else becomes enroll.
func (c *Conductor) CreateNode(ctx context.Context, n *node.Node) (*node.Node, error) {
	n = n.Clone()
	if n.UUID == "" {
		n.UUID = uuid.NewString()
	}
	if n.ProvisionState != node.Available {
		n.ProvisionState = node.Enroll
	}
	n.TargetProvisionState, n.PowerState, n.TargetPowerState = "", "", ""
	if n.ResourceClass == "" {
		n.ResourceClass = c.cfg.DefaultResourceClass
	}
	if err := c.checkServed(ctx, n); err != nil {
		return nil, err
	}
	if err := c.checkInterfaces(n, nil); err != nil {
		return nil, err
	}
	n.CreatedAt = c.cfg.Now().UTC()
	n.UpdatedAt = time.Time{} // Ironic shows null until the first update
	n.Normalize()
	if err := c.store.CreateNode(ctx, n); err != nil {
		return nil, err
	}
	c.log.Info().Str("node_id", n.UUID).Str("driver", n.Driver).Msg("node created")
	return n, nil
}

// checkInterfaces fills unset interfaces with the hardware type's defaults and refuses names
// it does not support. When the driver changed (old != nil), interfaces the new hardware type
// does not support are reset to its defaults unless they were set in the same request.
func (c *Conductor) checkInterfaces(n, old *node.Node) error {
	h, ok := c.hw[n.Driver]
	if !ok {
		return noHostForDriver(n.Driver, n.ConductorGroup)
	}
	sup := h.Supported()
	for _, t := range node.InterfaceTypes {
		v := n.Iface(t)
		if old != nil && old.Driver != n.Driver && v == old.Iface(t) && !slices.Contains(sup[t], v) {
			v = ""
		}
		if v == "" {
			n.SetIface(t, sup[t][0])
			continue
		}
		if !slices.Contains(sup[t], v) {
			if c.knownIface(t, v) {
				return node.Errorf(node.ErrInvalid, "%s interface implementation '%s' is not supported by hardware type %s.", t, v, n.Driver)
			}
			return node.Errorf(node.ErrInvalid, "Could not find the following interface in the 'ironic.hardware.interfaces.%s' entrypoint: %s. Valid interfaces are %s.", t, v, pyList(sup[t]))
		}
	}
	return nil
}

// knownIface reports whether any hardware type implements v for interface type t.
func (c *Conductor) knownIface(t, v string) bool {
	for _, h := range c.hw {
		if slices.Contains(h.Supported()[t], v) {
			return true
		}
	}
	return false
}

// pyList formats names the way Ironic's messages print a Python list: ['a', 'b'].
func pyList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = "'" + n + "'"
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// checkServed refuses a (driver, conductor group) that no online conductor serves.
func (c *Conductor) checkServed(ctx context.Context, n *node.Node) error {
	if n.Driver == "" {
		return node.Errorf(node.ErrInvalid, "Schema error for node: 'driver' is a required property")
	}
	if _, ok := c.hw[n.Driver]; ok && n.ConductorGroup == c.cfg.ConductorGroup {
		return nil
	}
	conds, err := c.store.ListConductors(ctx)
	if err != nil {
		return err
	}
	now := c.cfg.Now()
	for _, cd := range conds {
		if c.alive(cd, now) && strings.EqualFold(cd.ConductorGroup, n.ConductorGroup) && slices.Contains(cd.Drivers, n.Driver) {
			return nil
		}
	}
	return noHostForDriver(n.Driver, n.ConductorGroup)
}

// GetNode finds a node by UUID or name.
func (c *Conductor) GetNode(ctx context.Context, ident string) (*node.Node, error) {
	n, err := c.store.GetNode(ctx, ident)
	if err != nil {
		return nil, err
	}
	n.Normalize()
	c.attachAgentLinks(ctx, n)
	return n, nil
}

// ListNodes lists nodes.
func (c *Conductor) ListNodes(ctx context.Context, q node.NodeQuery) ([]*node.Node, error) {
	ns, err := c.store.ListNodes(ctx, q)
	for _, n := range ns {
		n.Normalize()
	}
	if err == nil {
		c.attachAgentLinks(ctx, ns...)
	}
	return ns, err
}

// UpdateNode applies mutate to the locked node and saves it (Ironic's update_node).
func (c *Conductor) UpdateNode(ctx context.Context, ident string, mutate func(n *node.Node) error) (*node.Node, error) {
	n, err := c.lock(ctx, ident)
	if err != nil {
		return nil, err
	}
	defer c.unlock(n.UUID)
	if n.TargetProvisionState != "" && !slices.Contains(node.UpdateAllowed, n.ProvisionState) {
		return nil, node.Errorf(node.ErrConflict, "Node %s can not be updated while a state transition is in progress.", n.UUID)
	}
	old := n.Clone()
	if err := mutate(n); err != nil {
		return nil, err
	}
	// Fields a PATCH cannot touch stay as stored, whatever mutate did.
	n.UUID, n.ID, n.CreatedAt = old.UUID, old.ID, old.CreatedAt
	n.Reservation, n.ReservationExpires = old.Reservation, old.ReservationExpires
	if n.Driver != old.Driver || n.ConductorGroup != old.ConductorGroup {
		if err := c.checkServed(ctx, n); err != nil {
			return nil, err
		}
	}
	if err := c.checkInterfaces(n, old); err != nil {
		return nil, err
	}
	if old.InstanceUUID != "" && n.InstanceUUID != "" && old.InstanceUUID != n.InstanceUUID {
		return nil, node.Errorf(node.ErrConflict, "Node %s is associated with instance %s.", n.UUID, old.InstanceUUID)
	}
	if old.Maintenance && !n.Maintenance {
		n.MaintenanceReason, n.Fault = "", ""
	}
	n.Normalize()
	if err := c.save(ctx, n); err != nil {
		return nil, err
	}
	return n, nil
}

// DeleteNode deletes a node and its ports and portgroups, under Ironic's rules.
func (c *Conductor) DeleteNode(ctx context.Context, ident string) error {
	n, err := c.lock(ctx, ident)
	if err != nil {
		return err
	}
	deleted := false
	defer func() {
		if !deleted {
			c.unlock(n.UUID)
		}
	}()
	if n.Protected {
		return node.Errorf(node.ErrForbidden, "Node %s is protected and cannot be undeployed, rebuilt or deleted", n.UUID)
	}
	if n.InstanceUUID != "" && !n.Maintenance {
		return node.Errorf(node.ErrConflict, "Node %s is associated with instance %s.", n.UUID, n.InstanceUUID)
	}
	allowed := slices.Contains(node.DeleteAllowed, n.ProvisionState) ||
		(c.cfg.AllowDeletingAvailable && n.ProvisionState == node.Available)
	if !allowed && !n.Maintenance {
		valid := make([]string, 0, 4)
		for _, s := range node.DeleteAllowed {
			valid = append(valid, string(s))
		}
		if c.cfg.AllowDeletingAvailable {
			valid = append(valid, string(node.Available))
		}
		return node.Errorf(node.ErrConflict, "Can not delete node %q while it is in provision state %q. Valid provision states to start deletion are %s, in addition to any state in maintenance mode.", n.UUID, n.ProvisionState, strings.Join(valid, ", "))
	}
	if n.AllocationUUID != "" {
		if err := c.store.DeleteAllocation(ctx, n.AllocationUUID); err != nil && !isNotFound(err) {
			return fmt.Errorf("delete allocation of node %s: %w", n.UUID, err)
		}
	}
	if err := c.store.DeleteNode(ctx, n.UUID, c.host); err != nil {
		return err
	}
	deleted = true
	c.log.Info().Str("node_id", n.UUID).Msg("node deleted")
	return nil
}

// SetMaintenance turns maintenance on (with a reason) or off (clearing reason and fault).
func (c *Conductor) SetMaintenance(ctx context.Context, ident string, on bool, reason string) error {
	_, err := c.UpdateNodeAnyState(ctx, ident, func(n *node.Node) error {
		n.Maintenance = on
		n.MaintenanceReason = reason
		if !on {
			n.MaintenanceReason, n.Fault = "", ""
		}
		return nil
	})
	return err
}

// UpdateNodeAnyState is UpdateNode without the "transition in progress" check, for changes
// Ironic allows in any state (maintenance).
func (c *Conductor) UpdateNodeAnyState(ctx context.Context, ident string, mutate func(n *node.Node) error) (*node.Node, error) {
	n, err := c.lock(ctx, ident)
	if err != nil {
		return nil, err
	}
	defer c.unlock(n.UUID)
	if err := mutate(n); err != nil {
		return nil, err
	}
	if err := c.save(ctx, n); err != nil {
		return nil, err
	}
	return n, nil
}

// Validate runs each interface's validation (GET /v1/nodes/{id}/validate).
func (c *Conductor) Validate(ctx context.Context, ident string) (map[string]ValidateResult, error) {
	n, err := c.GetNode(ctx, ident)
	if err != nil {
		return nil, err
	}
	d, err := c.driver(n)
	if err != nil {
		return nil, err
	}
	out := map[string]ValidateResult{}
	check := func(name string, v Validator, supported bool) {
		if !supported {
			out[name] = ValidateResult{Reason: "not supported"}
			return
		}
		ok := true
		r := ValidateResult{Result: &ok}
		if v != nil {
			if err := v.Validate(ctx, n); err != nil {
				ok = false
				r.Reason = err.Error()
			}
		}
		out[name] = r
	}
	check("power", d.Power, d.Power != nil)
	check("management", d.Management, d.Management != nil)
	check("deploy", d.Deploy, d.Deploy != nil)
	check("inspect", d.Inspect, d.Inspect != nil)
	check("rescue", d.Rescue, d.Rescue != nil)
	check("boot", d.Boot, d.Boot != nil)
	check("raid", d.Raid, d.Raid != nil)
	check("bios", d.Bios, d.Bios != nil)
	check("console", d.Console, d.Console != nil)
	check("network", nil, true)
	check("storage", nil, true)
	return out, nil
}

// SetTargetRAIDConfig stores target_raid_config (already schema-validated by the API).
func (c *Conductor) SetTargetRAIDConfig(ctx context.Context, ident string, cfg map[string]any) error {
	n, err := c.GetNode(ctx, ident)
	if err != nil {
		return err
	}
	d, err := c.driver(n)
	if err != nil {
		return err
	}
	if d.Raid == nil {
		return node.Errorf(node.ErrNotFound, "The requested action \"raid\" is not supported by the %s raid interface of node %s.", n.Interfaces.Raid, n.UUID)
	}
	_, err = c.UpdateNodeAnyState(ctx, ident, func(n *node.Node) error {
		n.TargetRaidConfig = cfg
		return nil
	})
	return err
}

// Drivers lists the hardware types this conductor serves.
func (c *Conductor) Drivers(ctx context.Context) ([]DriverInfo, error) {
	conds, err := c.store.ListConductors(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]DriverInfo, 0, len(c.hw))
	now := c.cfg.Now()
	for _, h := range c.cfg.HardwareTypes {
		var hosts []string
		for _, cd := range conds {
			if c.alive(cd, now) && slices.Contains(cd.Drivers, h.Name()) {
				hosts = append(hosts, cd.Hostname)
			}
		}
		if len(hosts) == 0 {
			hosts = []string{c.host}
		}
		out = append(out, DriverInfo{Name: h.Name(), Hosts: hosts, Supported: h.Supported()})
	}
	return out, nil
}

// ListConductors lists registered conductors; Online ("alive") is false for those whose
// heartbeat is older than HeartbeatTimeout.
func (c *Conductor) ListConductors(ctx context.Context) ([]*node.Conductor, error) {
	conds, err := c.store.ListConductors(ctx)
	now := c.cfg.Now()
	for _, cd := range conds {
		cd.Online = c.alive(cd, now)
	}
	return conds, err
}

// GetConductor shows one conductor, alive as in ListConductors.
func (c *Conductor) GetConductor(ctx context.Context, hostname string) (*node.Conductor, error) {
	cd, err := c.store.GetConductor(ctx, hostname)
	if err != nil {
		return nil, err
	}
	cd.Online = c.alive(cd, c.cfg.Now())
	return cd, nil
}

// DriverProperties lists the driver_info keys a hardware type reads, with their descriptions
// (GET /v1/drivers/{name}/properties); empty when the type does not describe them.
func (c *Conductor) DriverProperties(ctx context.Context, driver string) (map[string]string, error) {
	h, ok := c.hw[driver]
	if !ok {
		return nil, node.Errorf(node.ErrNotFound, "The driver '%s' is unknown.", driver)
	}
	if d, ok := h.(PropertiesDescriber); ok {
		return d.Properties(), nil
	}
	return map[string]string{}, nil
}
