// Package apitest is an in-memory api.Backend for testing the HTTP layer on its own: maps
// under one mutex, Ironic's messages for the common errors, locks and state checks kept
// minimal. Provisioning and power actions finish at once. Import it from tests only.
package apitest

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/ferrumhq/ferrum/controller/conductor"
	"github.com/ferrumhq/ferrum/controller/node"
)

// Hostname is the conductor every node belongs to.
const Hostname = "localhost"

// Backend implements api.Backend (and the optional AllocationUpdater and
// DriverPropertiesProvider) in memory. The zero value is not usable; call New.
type Backend struct {
	mu         sync.Mutex
	now        func() time.Time
	nextID     int64
	nodes      map[string]*node.Node
	ports      map[string]*node.Port
	portgroups map[string]*node.Portgroup
	allocs     map[string]*node.Allocation
	drivers    []conductor.DriverInfo
	conductors []*node.Conductor
	fail       map[string]error

	// Recorded calls, for assertions.
	Provisions []ProvisionCall
	Powers     []PowerCall

	boot map[string]conductor.BootDevice // by node UUID
}

// ProvisionCall is one SetProvisionState call.
type ProvisionCall struct {
	Node string
	Req  conductor.ProvisionRequest
}

// PowerCall is one SetPowerState call.
type PowerCall struct {
	Node, Target string
	Timeout      time.Duration
}

// New returns a Backend with Ironic's fake-hardware and ipmi drivers and one conductor.
// now may be nil (time.Now).
func New(now func() time.Time) *Backend {
	if now == nil {
		now = time.Now
	}
	b := &Backend{
		now:        now,
		nodes:      map[string]*node.Node{},
		ports:      map[string]*node.Port{},
		portgroups: map[string]*node.Portgroup{},
		allocs:     map[string]*node.Allocation{},
		fail:       map[string]error{},
		drivers:    DefaultDrivers(),
		boot:       map[string]conductor.BootDevice{},
	}
	t := now().UTC()
	b.conductors = []*node.Conductor{{Hostname: Hostname, Drivers: []string{"fake-hardware", "ipmi"},
		Online: true, CreatedAt: t, UpdatedAt: t}}
	return b
}

// DefaultDrivers mirrors Ironic 21.4.4's fake-hardware and ipmi; the first name of each list
// is the default.
func DefaultDrivers() []conductor.DriverInfo {
	return []conductor.DriverInfo{
		{Name: "fake-hardware", Hosts: []string{Hostname}, Supported: map[string][]string{
			"bios": {"fake", "no-bios"}, "boot": {"fake", "ipxe", "pxe"},
			"console": {"fake", "no-console"}, "deploy": {"fake", "direct"},
			"firmware": {"no-firmware"}, "inspect": {"fake", "no-inspect"},
			"management": {"fake"}, "network": {"noop"}, "power": {"fake"},
			"raid": {"fake", "no-raid", "agent"}, "rescue": {"fake", "no-rescue"},
			"storage": {"noop", "fake"}, "vendor": {"fake", "no-vendor"},
		}},
		{Name: "ipmi", Hosts: []string{Hostname}, Supported: map[string][]string{
			"bios": {"no-bios"}, "boot": {"ipxe", "pxe"}, "console": {"no-console"},
			"deploy": {"direct"}, "firmware": {"no-firmware"}, "inspect": {"no-inspect"},
			"management": {"ipmitool"}, "network": {"noop"}, "power": {"ipmitool"},
			"raid": {"no-raid", "agent"}, "rescue": {"no-rescue"}, "storage": {"noop"},
			"vendor": {"ipmitool", "no-vendor"},
		}},
	}
}

// FailNext makes the next call of method (e.g. "SetProvisionState") return err.
func (b *Backend) FailNext(method string, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fail[method] = err
}

// injected returns and clears an injected error; b.mu is held.
func (b *Backend) injected(method string) error {
	err := b.fail[method]
	delete(b.fail, method)
	return err
}

// PutNode stores n as is (tests use it to set up states, reservations, inventories).
func (b *Backend) PutNode(n *node.Node) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := n.Clone()
	if c.ID == 0 {
		b.nextID++
		c.ID = b.nextID
	}
	c.Normalize()
	b.nodes[c.UUID] = c
}

// Node returns a copy of the stored node with that UUID, or nil.
func (b *Backend) Node(id string) *node.Node {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n := b.nodes[id]; n != nil {
		return n.Clone()
	}
	return nil
}

func isUUID(s string) bool { _, err := uuid.Parse(s); return err == nil }

// findNode looks a node up by UUID or name; b.mu is held.
func (b *Backend) findNode(ident string) (*node.Node, error) {
	if isUUID(ident) {
		if n := b.nodes[strings.ToLower(ident)]; n != nil {
			return n, nil
		}
		return nil, node.NotFound("Node", ident)
	}
	for _, n := range b.nodes {
		if n.Name == ident {
			return n, nil
		}
	}
	return nil, node.NotFound("Node", ident)
}

func (b *Backend) driver(name string) (conductor.DriverInfo, bool) {
	i := slices.IndexFunc(b.drivers, func(d conductor.DriverInfo) bool { return d.Name == name })
	if i < 0 {
		return conductor.DriverInfo{}, false
	}
	return b.drivers[i], true
}

// checkNode validates driver and interfaces and fills default interfaces; b.mu is held.
func (b *Backend) checkNode(n *node.Node) error {
	d, ok := b.driver(n.Driver)
	served := slices.ContainsFunc(b.conductors, func(c *node.Conductor) bool {
		return c.ConductorGroup == n.ConductorGroup
	})
	if !ok || !served {
		return node.Errorf(node.ErrInvalid, "No valid host was found. Reason: No conductor "+
			"service registered which supports driver %s for conductor group \"%s\".",
			n.Driver, n.ConductorGroup)
	}
	for _, t := range node.InterfaceTypes {
		names := d.Supported[t]
		switch v := n.Iface(t); {
		case v == "" && len(names) > 0:
			n.SetIface(t, names[0])
		case v != "" && !slices.Contains(names, v):
			return node.Errorf(node.ErrInvalid, "Could not find the following interface in the "+
				"'ironic.hardware.interfaces.%s' entrypoint: %s. Valid interfaces are ['%s'].",
				t, v, strings.Join(names, "', '"))
		}
	}
	for _, o := range b.nodes {
		if n.Name != "" && o.Name == n.Name && o.UUID != n.UUID {
			return node.Errorf(node.ErrConflict, "A node with name %s already exists.", n.Name)
		}
	}
	return nil
}

// CreateNode implements api.Backend.
func (b *Backend) CreateNode(_ context.Context, n *node.Node) (*node.Node, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.injected("CreateNode"); err != nil {
		return nil, err
	}
	c := n.Clone()
	if c.UUID == "" {
		c.UUID = uuid.NewString()
	}
	if _, dup := b.nodes[c.UUID]; dup {
		return nil, node.Errorf(node.ErrConflict, "A node with UUID %s already exists.", c.UUID)
	}
	if err := b.checkNode(c); err != nil {
		return nil, err
	}
	if c.ProvisionState == node.NoState {
		c.ProvisionState = node.Enroll
	}
	b.nextID++
	c.ID = b.nextID
	c.CreatedAt = b.now().UTC()
	c.Normalize()
	b.nodes[c.UUID] = c
	return c.Clone(), nil
}

// GetNode implements api.Backend.
func (b *Backend) GetNode(_ context.Context, ident string) (*node.Node, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.injected("GetNode"); err != nil {
		return nil, err
	}
	n, err := b.findNode(ident)
	if err != nil {
		return nil, err
	}
	return n.Clone(), nil
}

// nodeSortValue is the value a node sorts by for key.
func nodeSortValue(n *node.Node, key string) string {
	switch key {
	case "uuid":
		return n.UUID
	case "name":
		return n.Name
	case "created_at":
		return n.CreatedAt.Format(time.RFC3339Nano)
	case "updated_at":
		return n.UpdatedAt.Format(time.RFC3339Nano)
	case "provision_state":
		return string(n.ProvisionState)
	case "provision_updated_at":
		return n.ProvisionUpdatedAt.Format(time.RFC3339Nano)
	case "power_state":
		return n.PowerState
	case "driver":
		return n.Driver
	case "instance_uuid":
		return n.InstanceUUID
	case "maintenance":
		return fmt.Sprint(n.Maintenance)
	case "conductor_group":
		return n.ConductorGroup
	case "resource_class":
		return n.ResourceClass
	case "owner":
		return n.Owner
	case "lessee":
		return n.Lessee
	case "shard":
		return n.Shard
	}
	return fmt.Sprintf("%020d", n.ID)
}

func nodeMatches(n *node.Node, q node.NodeQuery) bool {
	eq := func(want, got string) bool { return want == "" || want == got }
	switch {
	case q.ProvisionState != "" && n.ProvisionState != q.ProvisionState,
		q.Maintenance != nil && *q.Maintenance != n.Maintenance,
		q.Retired != nil && *q.Retired != n.Retired,
		q.Associated != nil && *q.Associated != (n.InstanceUUID != ""),
		q.ConductorGroup != nil && *q.ConductorGroup != n.ConductorGroup,
		!eq(q.Driver, n.Driver), !eq(q.InstanceUUID, n.InstanceUUID),
		!eq(q.ResourceClass, n.ResourceClass), !eq(q.Fault, n.Fault), !eq(q.Owner, n.Owner),
		!eq(q.Lessee, n.Lessee), !eq(q.ChassisUUID, n.ChassisUUID), !eq(q.Shard, n.Shard),
		q.DescriptionContains != "" && !strings.Contains(n.Description, q.DescriptionContains):
		return false
	}
	return true
}

// page sorts items, skips past the marker and applies the limit.
func page[T any](items []T, p node.Page, key func(T, string) string, id func(T) string, kind string) ([]T, error) {
	dir := 1
	if p.SortDir == "desc" {
		dir = -1
	}
	slices.SortStableFunc(items, func(a, c T) int {
		return dir * cmp.Or(strings.Compare(key(a, p.SortKey), key(c, p.SortKey)),
			strings.Compare(key(a, "id"), key(c, "id")))
	})
	if p.Marker != "" {
		i := slices.IndexFunc(items, func(t T) bool { return id(t) == p.Marker })
		if i < 0 {
			return nil, node.NotFound(kind, p.Marker)
		}
		items = items[i+1:]
	}
	if p.Limit > 0 && len(items) > p.Limit {
		items = items[:p.Limit]
	}
	return items, nil
}

// ListNodes implements api.Backend.
func (b *Backend) ListNodes(_ context.Context, q node.NodeQuery) ([]*node.Node, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.injected("ListNodes"); err != nil {
		return nil, err
	}
	if q.Marker != "" && b.nodes[q.Marker] == nil {
		return nil, node.NotFound("Node", q.Marker)
	}
	var all []*node.Node
	for _, n := range b.nodes {
		if nodeMatches(n, q) || n.UUID == q.Marker {
			all = append(all, n)
		}
	}
	sorted, err := page(all, q.Page, nodeSortValue, func(n *node.Node) string { return n.UUID }, "Node")
	if err != nil {
		return nil, err
	}
	out := make([]*node.Node, len(sorted))
	for i, n := range sorted {
		out[i] = n.Clone()
	}
	return out, nil
}

// lockedNode returns the node unless another holder reserved it; b.mu is held.
func (b *Backend) lockedNode(ident string) (*node.Node, error) {
	n, err := b.findNode(ident)
	if err != nil {
		return nil, err
	}
	if n.Reservation != "" {
		return nil, &node.LockedError{Node: n.UUID, Holder: n.Reservation}
	}
	return n, nil
}

// UpdateNode implements api.Backend.
func (b *Backend) UpdateNode(_ context.Context, ident string, mutate func(n *node.Node) error) (*node.Node, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.injected("UpdateNode"); err != nil {
		return nil, err
	}
	n, err := b.lockedNode(ident)
	if err != nil {
		return nil, err
	}
	c := n.Clone()
	if err := mutate(c); err != nil {
		return nil, err
	}
	if err := b.checkNode(c); err != nil {
		return nil, err
	}
	c.UpdatedAt = b.now().UTC()
	c.Normalize()
	b.nodes[c.UUID] = c
	return c.Clone(), nil
}

// DeleteNode implements api.Backend.
func (b *Backend) DeleteNode(_ context.Context, ident string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.injected("DeleteNode"); err != nil {
		return err
	}
	n, err := b.lockedNode(ident)
	if err != nil {
		return err
	}
	if n.Protected {
		return node.Errorf(node.ErrForbidden, "Node %s is protected and cannot be undeployed, rebuilt or deleted", n.UUID)
	}
	if !n.Maintenance && !slices.Contains(node.DeleteAllowed, n.ProvisionState) {
		return node.Errorf(node.ErrConflict, "Can not delete node \"%s\" while it is in provision state \"%s\".",
			n.UUID, n.ProvisionState)
	}
	delete(b.nodes, n.UUID)
	for id, p := range b.ports {
		if p.NodeUUID == n.UUID {
			delete(b.ports, id)
		}
	}
	for id, pg := range b.portgroups {
		if pg.NodeUUID == n.UUID {
			delete(b.portgroups, id)
		}
	}
	return nil
}

// SetPowerState implements api.Backend; the node reaches the target at once.
func (b *Backend) SetPowerState(_ context.Context, ident, target string, timeout time.Duration) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.injected("SetPowerState"); err != nil {
		return err
	}
	n, err := b.lockedNode(ident)
	if err != nil {
		return err
	}
	b.Powers = append(b.Powers, PowerCall{Node: n.UUID, Target: target, Timeout: timeout})
	switch target {
	case node.PowerOff, node.SoftPowerOff:
		n.PowerState = node.PowerOff
	default:
		n.PowerState = node.PowerOn
	}
	n.UpdatedAt = b.now().UTC()
	return nil
}

// verbs maps API targets to events.
var verbs = map[string]node.Event{"active": node.EvDeploy, "deploy": node.EvDeploy,
	"deleted": node.EvDelete, "undeploy": node.EvDelete, "rebuild": node.EvRebuild,
	"manage": node.EvManage, "provide": node.EvProvide, "inspect": node.EvInspect,
	"abort": node.EvAbort, "clean": node.EvClean, "adopt": node.EvAdopt,
	"rescue": node.EvRescue, "unrescue": node.EvUnrescue}

// SetProvisionState implements api.Backend; the action completes at once.
func (b *Backend) SetProvisionState(_ context.Context, ident string, req conductor.ProvisionRequest) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.injected("SetProvisionState"); err != nil {
		return err
	}
	n, err := b.lockedNode(ident)
	if err != nil {
		return err
	}
	ev, ok := verbs[req.Target]
	if !ok || !node.Allowed(n.ProvisionState, ev) {
		return &node.InvalidStateError{Node: n.UUID, Verb: req.Target, State: n.ProvisionState}
	}
	b.Provisions = append(b.Provisions, ProvisionCall{Node: n.UUID, Req: req})
	manual := ev == node.EvClean
	state, _ := node.Next(n.ProvisionState, ev)
	for i := 0; i < 5 && !state.Stable(); i++ {
		next := node.EvDone
		switch {
		case state == node.Deleting:
			next = node.EvClean
		case state == node.Cleaning && manual:
			next = node.EvManage
		}
		to, err := node.Next(state, next)
		if err != nil {
			break
		}
		state = to
	}
	n.ProvisionState, n.TargetProvisionState = state, ""
	n.ProvisionUpdatedAt = b.now().UTC()
	if ev == node.EvDelete {
		n.InstanceUUID, n.InstanceInfo = "", map[string]any{}
	}
	return nil
}

// SetMaintenance implements api.Backend.
func (b *Backend) SetMaintenance(_ context.Context, ident string, on bool, reason string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.injected("SetMaintenance"); err != nil {
		return err
	}
	n, err := b.lockedNode(ident)
	if err != nil {
		return err
	}
	n.Maintenance, n.MaintenanceReason = on, reason
	if !on {
		n.Fault = ""
	}
	n.UpdatedAt = b.now().UTC()
	return nil
}

// Validate implements api.Backend: "no-*" interfaces are unsupported, the rest pass.
func (b *Backend) Validate(_ context.Context, ident string) (map[string]conductor.ValidateResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.injected("Validate"); err != nil {
		return nil, err
	}
	n, err := b.findNode(ident)
	if err != nil {
		return nil, err
	}
	out := map[string]conductor.ValidateResult{}
	ok := true
	for _, t := range node.InterfaceTypes {
		if t == "firmware" {
			continue
		}
		if strings.HasPrefix(n.Iface(t), "no-") {
			out[t] = conductor.ValidateResult{Reason: t + " interface is not supported"}
			continue
		}
		out[t] = conductor.ValidateResult{Result: &ok}
	}
	return out, nil
}

// SetTargetRAIDConfig implements api.Backend.
func (b *Backend) SetTargetRAIDConfig(_ context.Context, ident string, cfg map[string]any) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.injected("SetTargetRAIDConfig"); err != nil {
		return err
	}
	n, err := b.lockedNode(ident)
	if err != nil {
		return err
	}
	n.TargetRaidConfig = cloneMap(cfg)
	return nil
}

// cloneMap deep-copies a JSON object.
func cloneMap(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	raw, err := json.Marshal(m)
	if err != nil {
		panic("apitest: " + err.Error())
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		panic("apitest: " + err.Error())
	}
	return out
}

// jsonClone deep-copies any JSON-shaped struct.
func jsonClone[T any](v *T) *T {
	raw, err := json.Marshal(v)
	if err != nil {
		panic("apitest: " + err.Error())
	}
	out := new(T)
	if err := json.Unmarshal(raw, out); err != nil {
		panic("apitest: " + err.Error())
	}
	return out
}

// CreatePort implements api.Backend.
func (b *Backend) CreatePort(_ context.Context, p *node.Port) (*node.Port, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.injected("CreatePort"); err != nil {
		return nil, err
	}
	c := jsonClone(p)
	if c.UUID == "" {
		c.UUID = uuid.NewString()
	}
	if _, err := b.findNode(c.NodeUUID); err != nil {
		return nil, err
	}
	if _, dup := b.ports[c.UUID]; dup {
		return nil, node.Errorf(node.ErrConflict, "A port with UUID %s already exists.", c.UUID)
	}
	if err := b.checkPortAddress(c); err != nil {
		return nil, err
	}
	b.nextID++
	c.ID = b.nextID
	c.CreatedAt = b.now().UTC()
	normalizePort(c)
	b.ports[c.UUID] = c
	return jsonClone(c), nil
}

func (b *Backend) checkPortAddress(p *node.Port) error {
	for _, o := range b.ports {
		if o.Address == p.Address && o.UUID != p.UUID {
			return node.Errorf(node.ErrConflict, "A port with MAC address %s already exists.", p.Address)
		}
	}
	return nil
}

func normalizePort(p *node.Port) {
	for _, m := range []*map[string]any{&p.Extra, &p.InternalInfo, &p.LocalLinkConnection} {
		if *m == nil {
			*m = map[string]any{}
		}
	}
}

// GetPort implements api.Backend.
func (b *Backend) GetPort(_ context.Context, id string) (*node.Port, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.injected("GetPort"); err != nil {
		return nil, err
	}
	p := b.ports[strings.ToLower(id)]
	if p == nil {
		return nil, node.NotFound("Port", id)
	}
	c := jsonClone(p)
	c.ID = p.ID
	return c, nil
}

// ListPorts implements api.Backend.
func (b *Backend) ListPorts(_ context.Context, q node.PortQuery) ([]*node.Port, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.injected("ListPorts"); err != nil {
		return nil, err
	}
	var all []*node.Port
	for _, p := range b.ports {
		if (q.NodeUUID == "" || p.NodeUUID == q.NodeUUID) && (q.Address == "" || p.Address == q.Address) &&
			(q.PortgroupUUID == "" || p.PortgroupUUID == q.PortgroupUUID) {
			all = append(all, p)
		}
	}
	key := func(p *node.Port, k string) string {
		switch k {
		case "uuid":
			return p.UUID
		case "address":
			return p.Address
		case "name":
			return p.Name
		case "created_at":
			return p.CreatedAt.Format(time.RFC3339Nano)
		}
		return fmt.Sprintf("%020d", p.ID)
	}
	sorted, err := page(all, q.Page, key, func(p *node.Port) string { return p.UUID }, "Port")
	if err != nil {
		return nil, err
	}
	out := make([]*node.Port, len(sorted))
	for i, p := range sorted {
		out[i] = jsonClone(p)
	}
	return out, nil
}

// UpdatePort implements api.Backend.
func (b *Backend) UpdatePort(_ context.Context, id string, mutate func(p *node.Port) error) (*node.Port, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.injected("UpdatePort"); err != nil {
		return nil, err
	}
	p := b.ports[strings.ToLower(id)]
	if p == nil {
		return nil, node.NotFound("Port", id)
	}
	c := jsonClone(p)
	c.ID = p.ID
	if err := mutate(c); err != nil {
		return nil, err
	}
	if err := b.checkPortAddress(c); err != nil {
		return nil, err
	}
	c.UpdatedAt = b.now().UTC()
	normalizePort(c)
	b.ports[c.UUID] = c
	return jsonClone(c), nil
}

// DeletePort implements api.Backend.
func (b *Backend) DeletePort(_ context.Context, id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.injected("DeletePort"); err != nil {
		return err
	}
	if b.ports[id] == nil {
		return node.NotFound("Port", id)
	}
	delete(b.ports, id)
	return nil
}

// findPortgroup looks a portgroup up by UUID or name; b.mu is held.
func (b *Backend) findPortgroup(ident string) (*node.Portgroup, error) {
	if pg := b.portgroups[strings.ToLower(ident)]; pg != nil {
		return pg, nil
	}
	for _, pg := range b.portgroups {
		if pg.Name != "" && pg.Name == ident {
			return pg, nil
		}
	}
	return nil, node.NotFound("Portgroup", ident)
}

func (b *Backend) checkPortgroup(pg *node.Portgroup) error {
	for _, o := range b.portgroups {
		if o.UUID == pg.UUID {
			continue
		}
		if pg.Name != "" && o.Name == pg.Name {
			return node.Errorf(node.ErrConflict, "A portgroup with name %s already exists.", pg.Name)
		}
		if pg.Address != "" && o.Address == pg.Address {
			return node.Errorf(node.ErrConflict, "A portgroup with MAC address %s already exists.", pg.Address)
		}
	}
	return nil
}

func normalizePortgroup(pg *node.Portgroup) {
	for _, m := range []*map[string]any{&pg.Extra, &pg.InternalInfo, &pg.Properties} {
		if *m == nil {
			*m = map[string]any{}
		}
	}
}

// CreatePortgroup implements api.Backend.
func (b *Backend) CreatePortgroup(_ context.Context, pg *node.Portgroup) (*node.Portgroup, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.injected("CreatePortgroup"); err != nil {
		return nil, err
	}
	c := jsonClone(pg)
	if c.UUID == "" {
		c.UUID = uuid.NewString()
	}
	if _, err := b.findNode(c.NodeUUID); err != nil {
		return nil, err
	}
	if err := b.checkPortgroup(c); err != nil {
		return nil, err
	}
	b.nextID++
	c.ID = b.nextID
	c.CreatedAt = b.now().UTC()
	normalizePortgroup(c)
	b.portgroups[c.UUID] = c
	return jsonClone(c), nil
}

// GetPortgroup implements api.Backend.
func (b *Backend) GetPortgroup(_ context.Context, ident string) (*node.Portgroup, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.injected("GetPortgroup"); err != nil {
		return nil, err
	}
	pg, err := b.findPortgroup(ident)
	if err != nil {
		return nil, err
	}
	return jsonClone(pg), nil
}

// ListPortgroups implements api.Backend.
func (b *Backend) ListPortgroups(_ context.Context, q node.PortgroupQuery) ([]*node.Portgroup, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.injected("ListPortgroups"); err != nil {
		return nil, err
	}
	var all []*node.Portgroup
	for _, pg := range b.portgroups {
		if (q.NodeUUID == "" || pg.NodeUUID == q.NodeUUID) && (q.Address == "" || pg.Address == q.Address) {
			all = append(all, pg)
		}
	}
	key := func(pg *node.Portgroup, k string) string {
		switch k {
		case "uuid":
			return pg.UUID
		case "address":
			return pg.Address
		case "name":
			return pg.Name
		}
		return fmt.Sprintf("%020d", pg.ID)
	}
	sorted, err := page(all, q.Page, key, func(pg *node.Portgroup) string { return pg.UUID }, "Portgroup")
	if err != nil {
		return nil, err
	}
	out := make([]*node.Portgroup, len(sorted))
	for i, pg := range sorted {
		out[i] = jsonClone(pg)
	}
	return out, nil
}

// UpdatePortgroup implements api.Backend.
func (b *Backend) UpdatePortgroup(_ context.Context, ident string, mutate func(pg *node.Portgroup) error) (*node.Portgroup, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.injected("UpdatePortgroup"); err != nil {
		return nil, err
	}
	pg, err := b.findPortgroup(ident)
	if err != nil {
		return nil, err
	}
	c := jsonClone(pg)
	c.ID = pg.ID
	if err := mutate(c); err != nil {
		return nil, err
	}
	if err := b.checkPortgroup(c); err != nil {
		return nil, err
	}
	c.UpdatedAt = b.now().UTC()
	normalizePortgroup(c)
	b.portgroups[c.UUID] = c
	return jsonClone(c), nil
}

// DeletePortgroup implements api.Backend; a portgroup with ports is refused.
func (b *Backend) DeletePortgroup(_ context.Context, ident string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.injected("DeletePortgroup"); err != nil {
		return err
	}
	pg, err := b.findPortgroup(ident)
	if err != nil {
		return err
	}
	for _, p := range b.ports {
		if p.PortgroupUUID == pg.UUID {
			return node.Errorf(node.ErrInvalid, "Cannot complete the requested action because "+
				"portgroup %s contains ports.", pg.UUID)
		}
	}
	delete(b.portgroups, pg.UUID)
	return nil
}

// CreateAllocation implements api.Backend: it matches at once, or ends in state error.
func (b *Backend) CreateAllocation(_ context.Context, a *node.Allocation) (*node.Allocation, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.injected("CreateAllocation"); err != nil {
		return nil, err
	}
	c := jsonClone(a)
	if c.UUID == "" {
		c.UUID = uuid.NewString()
	}
	for _, o := range b.allocs {
		if o.UUID == c.UUID {
			return nil, node.Errorf(node.ErrConflict, "An allocation with UUID %s already exists.", c.UUID)
		}
		if c.Name != "" && o.Name == c.Name {
			return nil, node.Errorf(node.ErrConflict, "An allocation with name %s already exists.", c.Name)
		}
	}
	b.nextID++
	c.ID = b.nextID
	c.CreatedAt = b.now().UTC()
	if c.Extra == nil {
		c.Extra = map[string]any{}
	}
	if n := b.matchNode(c); n != nil {
		c.State, c.NodeUUID = node.AllocationActive, n.UUID
		n.AllocationUUID, n.InstanceUUID = c.UUID, c.UUID
	} else {
		c.State, c.NodeUUID = node.AllocationError, ""
		c.LastError = fmt.Sprintf("Failed to process allocation %s: no available nodes match "+
			"the resource class %s.", c.UUID, c.ResourceClass)
	}
	b.allocs[c.UUID] = c
	return jsonClone(c), nil
}

// matchNode picks a node for an allocation; b.mu is held.
func (b *Backend) matchNode(a *node.Allocation) *node.Node {
	if a.NodeUUID != "" {
		return b.nodes[a.NodeUUID]
	}
	var all []*node.Node
	for _, n := range b.nodes {
		all = append(all, n)
	}
	slices.SortFunc(all, func(x, y *node.Node) int { return cmp.Compare(x.ID, y.ID) })
	for _, n := range all {
		if n.ResourceClass != a.ResourceClass || n.ProvisionState != node.Available ||
			n.Maintenance || n.AllocationUUID != "" || n.InstanceUUID != "" {
			continue
		}
		if len(a.CandidateNodes) > 0 && !slices.Contains(a.CandidateNodes, n.UUID) {
			continue
		}
		if !slices.ContainsFunc(a.Traits, func(t string) bool { return !slices.Contains(n.Traits, t) }) {
			return n
		}
	}
	return nil
}

// findAllocation looks an allocation up by UUID or name; b.mu is held.
func (b *Backend) findAllocation(ident string) (*node.Allocation, error) {
	if a := b.allocs[strings.ToLower(ident)]; a != nil {
		return a, nil
	}
	for _, a := range b.allocs {
		if a.Name != "" && a.Name == ident {
			return a, nil
		}
	}
	return nil, node.NotFound("Allocation", ident)
}

// GetAllocation implements api.Backend.
func (b *Backend) GetAllocation(_ context.Context, ident string) (*node.Allocation, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.injected("GetAllocation"); err != nil {
		return nil, err
	}
	a, err := b.findAllocation(ident)
	if err != nil {
		return nil, err
	}
	return jsonClone(a), nil
}

// ListAllocations implements api.Backend.
func (b *Backend) ListAllocations(_ context.Context, q node.AllocationQuery) ([]*node.Allocation, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.injected("ListAllocations"); err != nil {
		return nil, err
	}
	var all []*node.Allocation
	for _, a := range b.allocs {
		if (q.NodeUUID == "" || a.NodeUUID == q.NodeUUID) && (q.ResourceClass == "" || a.ResourceClass == q.ResourceClass) &&
			(q.State == "" || a.State == q.State) && (q.Owner == "" || a.Owner == q.Owner) {
			all = append(all, a)
		}
	}
	key := func(a *node.Allocation, k string) string {
		switch k {
		case "uuid":
			return a.UUID
		case "name":
			return a.Name
		}
		return fmt.Sprintf("%020d", a.ID)
	}
	sorted, err := page(all, q.Page, key, func(a *node.Allocation) string { return a.UUID }, "Allocation")
	if err != nil {
		return nil, err
	}
	out := make([]*node.Allocation, len(sorted))
	for i, a := range sorted {
		out[i] = jsonClone(a)
	}
	return out, nil
}

// UpdateAllocation implements api.AllocationUpdater.
func (b *Backend) UpdateAllocation(_ context.Context, ident string, mutate func(a *node.Allocation) error) (*node.Allocation, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.injected("UpdateAllocation"); err != nil {
		return nil, err
	}
	a, err := b.findAllocation(ident)
	if err != nil {
		return nil, err
	}
	c := jsonClone(a)
	c.ID = a.ID
	if err := mutate(c); err != nil {
		return nil, err
	}
	c.UpdatedAt = b.now().UTC()
	b.allocs[c.UUID] = c
	return jsonClone(c), nil
}

// DeleteAllocation implements api.Backend; the node is released.
func (b *Backend) DeleteAllocation(_ context.Context, ident string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.injected("DeleteAllocation"); err != nil {
		return err
	}
	a, err := b.findAllocation(ident)
	if err != nil {
		return err
	}
	if n := b.nodes[a.NodeUUID]; n != nil && n.AllocationUUID == a.UUID {
		n.AllocationUUID = ""
		if n.InstanceUUID == a.UUID {
			n.InstanceUUID = ""
		}
	}
	delete(b.allocs, a.UUID)
	return nil
}

// Drivers implements api.Backend.
func (b *Backend) Drivers(context.Context) ([]conductor.DriverInfo, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.injected("Drivers"); err != nil {
		return nil, err
	}
	return slices.Clone(b.drivers), nil
}

// DriverProperties implements api.DriverPropertiesProvider.
func (b *Backend) DriverProperties(_ context.Context, name string) (map[string]string, error) {
	if name == "ipmi" {
		return map[string]string{"ipmi_address": "IP address or hostname of the node. Required.",
			"ipmi_password": "password. Optional."}, nil
	}
	return map[string]string{}, nil
}

// ListConductors implements api.Backend.
func (b *Backend) ListConductors(context.Context) ([]*node.Conductor, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.injected("ListConductors"); err != nil {
		return nil, err
	}
	out := make([]*node.Conductor, len(b.conductors))
	for i, c := range b.conductors {
		cc := *c
		out[i] = &cc
	}
	return out, nil
}

// GetConductor implements api.Backend.
func (b *Backend) GetConductor(_ context.Context, hostname string) (*node.Conductor, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.injected("GetConductor"); err != nil {
		return nil, err
	}
	for _, c := range b.conductors {
		if c.Hostname == hostname {
			cc := *c
			return &cc, nil
		}
	}
	return nil, node.NotFound("Conductor", hostname)
}

// bootDevicesOf is what each driver's management interface accepts (Ironic's fake and
// ipmitool management).
func bootDevicesOf(driver string) []string {
	if driver == "fake-hardware" {
		return []string{"pxe"}
	}
	return []string{"pxe", "disk", "cdrom", "bios", "safe"}
}

// SupportedBootDevices implements api.BootDeviceManager.
func (b *Backend) SupportedBootDevices(_ context.Context, ident string) ([]string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.injected("SupportedBootDevices"); err != nil {
		return nil, err
	}
	n, err := b.findNode(ident)
	if err != nil {
		return nil, err
	}
	return bootDevicesOf(n.Driver), nil
}

// SetBootDevice implements api.BootDeviceManager.
func (b *Backend) SetBootDevice(_ context.Context, ident, device string, persistent bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.injected("SetBootDevice"); err != nil {
		return err
	}
	n, err := b.lockedNode(ident)
	if err != nil {
		return err
	}
	if !slices.Contains(bootDevicesOf(n.Driver), device) {
		return node.Errorf(node.ErrInvalid, "Invalid boot device %s specified.", device)
	}
	b.boot[n.UUID] = conductor.BootDevice{Device: device, Persistent: &persistent}
	return nil
}

// GetBootDevice implements api.BootDeviceManager: unknown until set.
func (b *Backend) GetBootDevice(_ context.Context, ident string) (conductor.BootDevice, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.injected("GetBootDevice"); err != nil {
		return conductor.BootDevice{}, err
	}
	n, err := b.lockedNode(ident)
	if err != nil {
		return conductor.BootDevice{}, err
	}
	return b.boot[n.UUID], nil
}
