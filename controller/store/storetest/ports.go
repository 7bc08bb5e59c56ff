package storetest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/ferrumhq/ferrum/controller/conductor"
	"github.com/ferrumhq/ferrum/controller/node"
)

func newPort(nodeUUID, mac string) *node.Port {
	return &node.Port{UUID: newUUID(), NodeUUID: nodeUUID, Address: mac, PXEEnabled: true}
}

func newPortgroup(nodeUUID, name, mac string) *node.Portgroup {
	return &node.Portgroup{UUID: newUUID(), NodeUUID: nodeUUID, Name: name, Address: mac}
}

// ---- ports ----

func fullPort(nodeUUID, portgroupUUID string, seed int) *node.Port {
	v := func(s string) string { return fmt.Sprintf("%s-%d", s, seed) }
	return &node.Port{
		UUID:                newUUID(),
		NodeUUID:            nodeUUID,
		Address:             fmt.Sprintf("52:54:00:AB:CD:%02X", seed),
		PortgroupUUID:       portgroupUUID,
		PXEEnabled:          true,
		LocalLinkConnection: map[string]any{"switch_id": v("aa:bb"), "port_id": v("Eth1/1"), "vlans": []any{float64(seed)}},
		PhysicalNetwork:     v("physnet"),
		Extra:               map[string]any{"k": v("v")},
		InternalInfo:        map[string]any{"tenant_vif_port_id": v("vif")},
		IsSmartNIC:          true,
		Name:                v("port"),
		CreatedAt:           base.Add(time.Duration(seed) * time.Minute),
		UpdatedAt:           base.Add(time.Duration(seed) * time.Hour),
	}
}

func testPortCRUD(t *testing.T, s conductor.Store) {
	ctx := t.Context()
	n := createNode(t, s, "port-node")
	pg := newPortgroup(n.UUID, "bond0", "")
	must(t, "CreatePortgroup", s.CreatePortgroup(ctx, pg))

	in := fullPort(n.UUID, pg.UUID, 1)
	wantAllSet(t, in, "ID")
	want := *in
	want.Address = strings.ToLower(in.Address)
	must(t, "CreatePort", s.CreatePort(ctx, in))
	if in.ID == 0 {
		t.Errorf("CreatePort left ID 0, want it filled")
	}
	if in.Address != want.Address {
		t.Errorf("CreatePort left Address %q, want it lower-cased to %q", in.Address, want.Address)
	}
	want.ID = in.ID
	got, err := s.GetPort(ctx, in.UUID)
	must(t, "GetPort", err)
	if diff := cmp.Diff(&want, got, cmpOpts); diff != "" {
		t.Errorf("GetPort mismatch (-want +got):\n%s", diff)
	}
	wantUTC(t, "GetPort", got.CreatedAt, got.UpdatedAt)

	// Every field changed.
	m := fullPort(n.UUID, "", 2)
	m.ID, m.UUID = in.ID, in.UUID
	m.PXEEnabled, m.IsSmartNIC = false, false
	must(t, "SavePort", s.SavePort(ctx, m))
	wantRecent(t, "SavePort UpdatedAt", m.UpdatedAt)
	got, err = s.GetPort(ctx, in.UUID)
	must(t, "GetPort after save", err)
	if diff := cmp.Diff(m, got, cmpOpts); diff != "" {
		t.Errorf("GetPort after SavePort mismatch (-want +got):\n%s", diff)
	}
	if got.Address != "52:54:00:ab:cd:02" {
		t.Errorf("GetPort after SavePort Address = %q, want lower-case", got.Address)
	}

	must(t, "DeletePort", s.DeletePort(ctx, in.UUID))
	_, err = s.GetPort(ctx, in.UUID)
	wantErr(t, "GetPort(deleted)", err, node.ErrNotFound, "Port "+in.UUID+" could not be found.")
}

func testPortErrors(t *testing.T, s conductor.Store) {
	ctx := t.Context()
	n := createNode(t, s, "pe-node")
	p := newPort(n.UUID, "52:54:00:00:00:01")
	p.Name = "pe-port"
	must(t, "CreatePort", s.CreatePort(ctx, p))
	q := newPort(n.UUID, "52:54:00:00:00:02")
	must(t, "CreatePort", s.CreatePort(ctx, q))
	// Ports without address or name coexist.
	for range 2 {
		must(t, "CreatePort(no address, no name)", s.CreatePort(ctx, newPort(n.UUID, "")))
	}
	missing := newUUID()

	tests := []struct {
		name string
		call func() error
		kind error
		msg  string
	}{
		{"get/missing", func() error { _, err := s.GetPort(ctx, missing); return err },
			node.ErrNotFound, "Port " + missing + " could not be found."},
		{"save/missing", func() error { x := newPort(n.UUID, "52:54:00:00:00:99"); x.UUID = missing; return s.SavePort(ctx, x) },
			node.ErrNotFound, "Port " + missing + " could not be found."},
		{"delete/missing", func() error { return s.DeletePort(ctx, missing) },
			node.ErrNotFound, "Port " + missing + " could not be found."},
		{"create/duplicate-uuid", func() error { x := newPort(n.UUID, "52:54:00:00:00:03"); x.UUID = p.UUID; return s.CreatePort(ctx, x) },
			node.ErrConflict, "A port with UUID " + p.UUID + " already exists."},
		{"create/duplicate-mac", func() error { return s.CreatePort(ctx, newPort(n.UUID, "52:54:00:00:00:01")) },
			node.ErrConflict, "A port with MAC address 52:54:00:00:00:01 already exists."},
		{"create/duplicate-mac-upper-case", func() error { return s.CreatePort(ctx, newPort(n.UUID, "52:54:00:00:00:0A")) },
			node.ErrConflict, "A port with MAC address 52:54:00:00:00:0a already exists."},
		{"create/duplicate-name", func() error {
			x := newPort(n.UUID, "52:54:00:00:00:04")
			x.Name = "pe-port"
			return s.CreatePort(ctx, x)
		}, node.ErrConflict, "A port with name pe-port already exists."},
		{"create/unknown-node", func() error { return s.CreatePort(ctx, newPort(missing, "52:54:00:00:00:05")) },
			node.ErrNotFound, "Node " + missing + " could not be found."},
		{"create/unknown-portgroup", func() error {
			x := newPort(n.UUID, "52:54:00:00:00:06")
			x.PortgroupUUID = missing
			return s.CreatePort(ctx, x)
		}, node.ErrNotFound, "Portgroup " + missing + " could not be found."},
		{"save/duplicate-mac", func() error {
			x, _ := s.GetPort(ctx, q.UUID)
			x.Address = "52:54:00:00:00:01"
			return s.SavePort(ctx, x)
		}, node.ErrConflict, "A port with MAC address 52:54:00:00:00:01 already exists."},
		{"save/unknown-node", func() error { x, _ := s.GetPort(ctx, q.UUID); x.NodeUUID = missing; return s.SavePort(ctx, x) },
			node.ErrNotFound, "Node " + missing + " could not be found."},
	}
	must(t, "CreatePort(52:54:00:00:00:0a)", s.CreatePort(ctx, newPort(n.UUID, "52:54:00:00:00:0a")))
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { wantErr(t, tc.name, tc.call(), tc.kind, tc.msg) })
	}
	got, err := s.GetPort(ctx, q.UUID)
	must(t, "GetPort", err)
	if got.Address != q.Address || got.NodeUUID != n.UUID {
		t.Errorf("failed SavePort changed the port: %+v", got)
	}
}

func testPortFilters(t *testing.T, s conductor.Store) {
	ctx := t.Context()
	a := createNode(t, s, "pf-a")
	b := createNode(t, s, "pf-b")
	pg := newPortgroup(a.UUID, "pf-bond", "")
	must(t, "CreatePortgroup", s.CreatePortgroup(ctx, pg))
	ports := []*node.Port{
		newPort(a.UUID, "52:54:00:00:01:0A"),
		newPort(a.UUID, "52:54:00:00:01:02"),
		newPort(b.UUID, "52:54:00:00:02:01"),
	}
	ports[1].PortgroupUUID = pg.UUID
	for _, p := range ports {
		must(t, "CreatePort", s.CreatePort(ctx, p))
	}
	tests := []struct {
		name string
		q    node.PortQuery
		want []int
	}{
		{"none/all", node.PortQuery{}, []int{0, 1, 2}},
		{"node", node.PortQuery{NodeUUID: a.UUID}, []int{0, 1}},
		{"address", node.PortQuery{Address: "52:54:00:00:02:01"}, []int{2}},
		{"address/lower-case-query", node.PortQuery{Address: "52:54:00:00:01:0a"}, []int{0}},
		{"address/upper-case-query", node.PortQuery{Address: "52:54:00:00:01:0A"}, []int{0}},
		{"address/unknown", node.PortQuery{Address: "52:54:00:00:09:09"}, nil},
		{"portgroup", node.PortQuery{PortgroupUUID: pg.UUID}, []int{1}},
		{"combined", node.PortQuery{NodeUUID: a.UUID, PortgroupUUID: pg.UUID}, []int{1}},
		{"combined/no-match", node.PortQuery{NodeUUID: b.UUID, PortgroupUUID: pg.UUID}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ListPorts(ctx, tc.q)
			must(t, "ListPorts", err)
			var want, gotU []string
			for _, i := range tc.want {
				want = append(want, ports[i].UUID)
			}
			for _, p := range got {
				gotU = append(gotU, p.UUID)
			}
			if diff := cmp.Diff(want, gotU, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("ListPorts(%+v) mismatch (-want +got):\n%s", tc.q, diff)
			}
		})
	}
}

var portEntity = entity[*node.Port]{
	id:   func(p *node.Port) int64 { return p.ID },
	uuid: func(p *node.Port) string { return p.UUID },
	values: map[string]func(*node.Port) any{
		"id":         func(p *node.Port) any { return p.ID },
		"uuid":       func(p *node.Port) any { return p.UUID },
		"address":    func(p *node.Port) any { return p.Address },
		"created_at": func(p *node.Port) any { return p.CreatedAt },
		"updated_at": func(p *node.Port) any { return p.UpdatedAt },
		"name":       func(p *node.Port) any { return p.Name },
	},
}

func testPortPaging(t *testing.T, s conductor.Store) {
	ctx := t.Context()
	n := createNode(t, s, "pp-node")
	var ports []*node.Port
	for i := range 15 {
		p := &node.Port{UUID: newUUID(), NodeUUID: n.UUID, CreatedAt: base.Add(time.Duration(i%4) * time.Second)}
		if i%5 != 0 {
			p.Address = fmt.Sprintf("52:54:00:00:00:%02x", (i*7)%15)
		}
		if i%3 != 0 {
			p.Name = fmt.Sprintf("port%02d", (i*4)%15)
		}
		if i%2 == 1 {
			p.UpdatedAt = base.Add(time.Duration(i%3) * time.Minute)
		}
		must(t, "CreatePort", s.CreatePort(ctx, p))
		ports = append(ports, p)
	}
	checkPaging(t, portEntity, node.PortSortKeys, ports, func(p node.Page) ([]*node.Port, error) {
		return s.ListPorts(ctx, node.PortQuery{Page: p})
	})
	t.Run("errors", func(t *testing.T) {
		checkListErrors(t, "Port", "extra", func(p node.Page) error {
			_, err := s.ListPorts(ctx, node.PortQuery{Page: p})
			return err
		})
	})
}

// ---- portgroups ----

func fullPortgroup(nodeUUID string, seed int) *node.Portgroup {
	v := func(s string) string { return fmt.Sprintf("%s-%d", s, seed) }
	return &node.Portgroup{
		UUID:                     newUUID(),
		NodeUUID:                 nodeUUID,
		Name:                     v("bond"),
		Address:                  fmt.Sprintf("52:54:00:EF:00:%02X", seed),
		Mode:                     v("802.3ad"),
		Properties:               map[string]any{"miimon": float64(100 + seed), "xmit_hash_policy": v("layer3+4")},
		Extra:                    map[string]any{"k": v("v")},
		InternalInfo:             map[string]any{"tenant_vif_portgroup_id": v("vif")},
		StandalonePortsSupported: true,
		CreatedAt:                base.Add(time.Duration(seed) * time.Minute),
		UpdatedAt:                base.Add(time.Duration(seed) * time.Hour),
	}
}

func testPortgroupCRUD(t *testing.T, s conductor.Store) {
	ctx := t.Context()
	n := createNode(t, s, "pg-node")
	in := fullPortgroup(n.UUID, 1)
	wantAllSet(t, in, "ID")
	want := *in
	want.Address = strings.ToLower(in.Address)
	must(t, "CreatePortgroup", s.CreatePortgroup(ctx, in))
	if in.ID == 0 {
		t.Errorf("CreatePortgroup left ID 0, want it filled")
	}
	want.ID = in.ID
	for _, ident := range []string{in.UUID, in.Name} {
		got, err := s.GetPortgroup(ctx, ident)
		must(t, "GetPortgroup("+ident+")", err)
		if diff := cmp.Diff(&want, got, cmpOpts); diff != "" {
			t.Errorf("GetPortgroup(%q) mismatch (-want +got):\n%s", ident, diff)
		}
		wantUTC(t, "GetPortgroup", got.CreatedAt, got.UpdatedAt)
	}

	m := fullPortgroup(n.UUID, 2)
	m.ID, m.UUID = in.ID, in.UUID
	m.StandalonePortsSupported = false
	must(t, "SavePortgroup", s.SavePortgroup(ctx, m))
	wantRecent(t, "SavePortgroup UpdatedAt", m.UpdatedAt)
	got, err := s.GetPortgroup(ctx, m.Name)
	must(t, "GetPortgroup after save", err)
	if diff := cmp.Diff(m, got, cmpOpts); diff != "" {
		t.Errorf("GetPortgroup after SavePortgroup mismatch (-want +got):\n%s", diff)
	}

	// A portgroup with ports cannot be deleted; once they leave, it can.
	p := newPort(n.UUID, "52:54:00:00:00:01")
	p.PortgroupUUID = in.UUID
	must(t, "CreatePort", s.CreatePort(ctx, p))
	wantErr(t, "DeletePortgroup(with ports)", s.DeletePortgroup(ctx, in.UUID), node.ErrInvalid,
		"Cannot complete the requested action because portgroup "+in.UUID+" contains ports.")
	p.PortgroupUUID = ""
	must(t, "SavePort(leave portgroup)", s.SavePort(ctx, p))
	must(t, "DeletePortgroup", s.DeletePortgroup(ctx, in.UUID))
	_, err = s.GetPortgroup(ctx, in.UUID)
	wantErr(t, "GetPortgroup(deleted)", err, node.ErrNotFound, "Portgroup "+in.UUID+" could not be found.")
}

func testPortgroupErrors(t *testing.T, s conductor.Store) {
	ctx := t.Context()
	n := createNode(t, s, "pge-node")
	pg := newPortgroup(n.UUID, "pge-bond", "52:54:00:00:00:0b")
	must(t, "CreatePortgroup", s.CreatePortgroup(ctx, pg))
	other := newPortgroup(n.UUID, "pge-other", "")
	must(t, "CreatePortgroup", s.CreatePortgroup(ctx, other))
	must(t, "CreatePortgroup(no name, no address)", s.CreatePortgroup(ctx, newPortgroup(n.UUID, "", "")))
	must(t, "CreatePortgroup(no name, no address)", s.CreatePortgroup(ctx, newPortgroup(n.UUID, "", "")))
	missing := newUUID()
	tests := []struct {
		name string
		call func() error
		kind error
		msg  string
	}{
		{"get/missing-uuid", func() error { _, err := s.GetPortgroup(ctx, missing); return err },
			node.ErrNotFound, "Portgroup " + missing + " could not be found."},
		{"get/missing-name", func() error { _, err := s.GetPortgroup(ctx, "nope"); return err },
			node.ErrNotFound, "Portgroup nope could not be found."},
		{"save/missing", func() error { x := newPortgroup(n.UUID, "x", ""); x.UUID = missing; return s.SavePortgroup(ctx, x) },
			node.ErrNotFound, "Portgroup " + missing + " could not be found."},
		{"delete/missing", func() error { return s.DeletePortgroup(ctx, missing) },
			node.ErrNotFound, "Portgroup " + missing + " could not be found."},
		{"create/duplicate-uuid", func() error { x := newPortgroup(n.UUID, "x", ""); x.UUID = pg.UUID; return s.CreatePortgroup(ctx, x) },
			node.ErrConflict, "A portgroup with UUID " + pg.UUID + " already exists."},
		{"create/duplicate-name", func() error { return s.CreatePortgroup(ctx, newPortgroup(n.UUID, "pge-bond", "")) },
			node.ErrConflict, "A portgroup with name pge-bond already exists."},
		{"create/duplicate-mac-upper-case", func() error { return s.CreatePortgroup(ctx, newPortgroup(n.UUID, "y", "52:54:00:00:00:0B")) },
			node.ErrConflict, "A portgroup with MAC address 52:54:00:00:00:0b already exists."},
		{"create/unknown-node", func() error { return s.CreatePortgroup(ctx, newPortgroup(missing, "z", "")) },
			node.ErrNotFound, "Node " + missing + " could not be found."},
		{"save/duplicate-name", func() error {
			x, _ := s.GetPortgroup(ctx, other.UUID)
			x.Name = "pge-bond"
			return s.SavePortgroup(ctx, x)
		}, node.ErrConflict, "A portgroup with name pge-bond already exists."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { wantErr(t, tc.name, tc.call(), tc.kind, tc.msg) })
	}
}

func testPortgroupFilters(t *testing.T, s conductor.Store) {
	ctx := t.Context()
	a := createNode(t, s, "pgf-a")
	b := createNode(t, s, "pgf-b")
	pgs := []*node.Portgroup{
		newPortgroup(a.UUID, "pgf-0", "52:54:00:00:01:0A"),
		newPortgroup(a.UUID, "pgf-1", ""),
		newPortgroup(b.UUID, "pgf-2", "52:54:00:00:02:01"),
	}
	for _, pg := range pgs {
		must(t, "CreatePortgroup", s.CreatePortgroup(ctx, pg))
	}
	tests := []struct {
		name string
		q    node.PortgroupQuery
		want []string
	}{
		{"none/all", node.PortgroupQuery{}, []string{"pgf-0", "pgf-1", "pgf-2"}},
		{"node", node.PortgroupQuery{NodeUUID: a.UUID}, []string{"pgf-0", "pgf-1"}},
		{"address/ignores-case", node.PortgroupQuery{Address: "52:54:00:00:01:0a"}, []string{"pgf-0"}},
		{"combined/no-match", node.PortgroupQuery{NodeUUID: b.UUID, Address: "52:54:00:00:01:0a"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ListPortgroups(ctx, tc.q)
			must(t, "ListPortgroups", err)
			var names []string
			for _, pg := range got {
				names = append(names, pg.Name)
			}
			if diff := cmp.Diff(tc.want, names, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("ListPortgroups(%+v) mismatch (-want +got):\n%s", tc.q, diff)
			}
		})
	}
}

var portgroupEntity = entity[*node.Portgroup]{
	id:   func(pg *node.Portgroup) int64 { return pg.ID },
	uuid: func(pg *node.Portgroup) string { return pg.UUID },
	values: map[string]func(*node.Portgroup) any{
		"id":         func(pg *node.Portgroup) any { return pg.ID },
		"uuid":       func(pg *node.Portgroup) any { return pg.UUID },
		"address":    func(pg *node.Portgroup) any { return pg.Address },
		"created_at": func(pg *node.Portgroup) any { return pg.CreatedAt },
		"updated_at": func(pg *node.Portgroup) any { return pg.UpdatedAt },
		"name":       func(pg *node.Portgroup) any { return pg.Name },
	},
}

func testPortgroupPaging(t *testing.T, s conductor.Store) {
	ctx := t.Context()
	n := createNode(t, s, "pgp-node")
	var pgs []*node.Portgroup
	for i := range 13 {
		pg := &node.Portgroup{UUID: newUUID(), NodeUUID: n.UUID, CreatedAt: base.Add(time.Duration(i%3) * time.Second)}
		if i%4 != 0 {
			pg.Address = fmt.Sprintf("52:54:00:00:00:%02x", (i*5)%13)
		}
		if i%3 != 0 {
			pg.Name = fmt.Sprintf("bond%02d", (i*6)%13)
		}
		if i%2 == 0 {
			pg.UpdatedAt = base.Add(time.Duration(i%3) * time.Minute)
		}
		must(t, "CreatePortgroup", s.CreatePortgroup(ctx, pg))
		pgs = append(pgs, pg)
	}
	checkPaging(t, portgroupEntity, node.PortSortKeys, pgs, func(p node.Page) ([]*node.Portgroup, error) {
		return s.ListPortgroups(ctx, node.PortgroupQuery{Page: p})
	})
	t.Run("errors", func(t *testing.T) {
		checkListErrors(t, "Portgroup", "mode", func(p node.Page) error {
			_, err := s.ListPortgroups(ctx, node.PortgroupQuery{Page: p})
			return err
		})
	})
}

// ---- allocations ----

func fullAllocation(seed int) *node.Allocation {
	v := func(s string) string { return fmt.Sprintf("%s-%d", s, seed) }
	return &node.Allocation{
		UUID:           newUUID(),
		Name:           v("alloc"),
		NodeUUID:       newUUID(),
		ResourceClass:  v("baremetal"),
		Traits:         []string{v("CUSTOM_GPU"), v("CUSTOM_NVME")},
		CandidateNodes: []string{newUUID(), v("node-by-name")},
		State:          node.AllocationError,
		LastError:      v("no node"),
		Extra:          map[string]any{"k": v("v"), "n": float64(seed)},
		Owner:          v("project"),
		CreatedAt:      base.Add(time.Duration(seed) * time.Minute),
		UpdatedAt:      base.Add(time.Duration(seed) * time.Hour),
	}
}

func testAllocationCRUD(t *testing.T, s conductor.Store) {
	ctx := t.Context()
	in := fullAllocation(1)
	wantAllSet(t, in, "ID")
	want := *in
	must(t, "CreateAllocation", s.CreateAllocation(ctx, in))
	if in.ID == 0 {
		t.Errorf("CreateAllocation left ID 0, want it filled")
	}
	want.ID = in.ID
	for _, ident := range []string{in.UUID, in.Name} {
		got, err := s.GetAllocation(ctx, ident)
		must(t, "GetAllocation("+ident+")", err)
		if diff := cmp.Diff(&want, got, cmpOpts); diff != "" {
			t.Errorf("GetAllocation(%q) mismatch (-want +got):\n%s", ident, diff)
		}
		wantUTC(t, "GetAllocation", got.CreatedAt, got.UpdatedAt)
	}
	m := fullAllocation(2)
	m.ID, m.UUID, m.State = in.ID, in.UUID, node.AllocationActive
	must(t, "SaveAllocation", s.SaveAllocation(ctx, m))
	wantRecent(t, "SaveAllocation UpdatedAt", m.UpdatedAt)
	got, err := s.GetAllocation(ctx, m.UUID)
	must(t, "GetAllocation after save", err)
	if diff := cmp.Diff(m, got, cmpOpts); diff != "" {
		t.Errorf("GetAllocation after SaveAllocation mismatch (-want +got):\n%s", diff)
	}
	must(t, "DeleteAllocation", s.DeleteAllocation(ctx, in.UUID))
	_, err = s.GetAllocation(ctx, in.UUID)
	wantErr(t, "GetAllocation(deleted)", err, node.ErrNotFound, "Allocation "+in.UUID+" could not be found.")
}

func testAllocationErrors(t *testing.T, s conductor.Store) {
	ctx := t.Context()
	a := &node.Allocation{UUID: newUUID(), Name: "ae-a", State: node.AllocationAllocating}
	must(t, "CreateAllocation", s.CreateAllocation(ctx, a))
	b := &node.Allocation{UUID: newUUID(), Name: "ae-b", State: node.AllocationAllocating}
	must(t, "CreateAllocation", s.CreateAllocation(ctx, b))
	for range 2 {
		must(t, "CreateAllocation(no name)", s.CreateAllocation(ctx, &node.Allocation{UUID: newUUID()}))
	}
	missing := newUUID()
	tests := []struct {
		name string
		call func() error
		kind error
		msg  string
	}{
		{"get/missing-uuid", func() error { _, err := s.GetAllocation(ctx, missing); return err },
			node.ErrNotFound, "Allocation " + missing + " could not be found."},
		{"get/missing-name", func() error { _, err := s.GetAllocation(ctx, "nope"); return err },
			node.ErrNotFound, "Allocation nope could not be found."},
		{"save/missing", func() error { return s.SaveAllocation(ctx, &node.Allocation{UUID: missing}) },
			node.ErrNotFound, "Allocation " + missing + " could not be found."},
		{"delete/missing", func() error { return s.DeleteAllocation(ctx, missing) },
			node.ErrNotFound, "Allocation " + missing + " could not be found."},
		{"create/duplicate-uuid", func() error { return s.CreateAllocation(ctx, &node.Allocation{UUID: a.UUID}) },
			node.ErrConflict, "An allocation with UUID " + a.UUID + " already exists."},
		{"create/duplicate-name", func() error { return s.CreateAllocation(ctx, &node.Allocation{UUID: newUUID(), Name: "ae-a"}) },
			node.ErrConflict, "An allocation with name ae-a already exists."},
		{"save/duplicate-name", func() error { x, _ := s.GetAllocation(ctx, b.UUID); x.Name = "ae-a"; return s.SaveAllocation(ctx, x) },
			node.ErrConflict, "An allocation with name ae-a already exists."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { wantErr(t, tc.name, tc.call(), tc.kind, tc.msg) })
	}
}

func testAllocationFilters(t *testing.T, s conductor.Store) {
	ctx := t.Context()
	n1, n2 := newUUID(), newUUID()
	as := []*node.Allocation{
		{Name: "af-0", NodeUUID: n1, ResourceClass: "gold", State: node.AllocationActive, Owner: "p1"},
		{Name: "af-1", ResourceClass: "gold", State: node.AllocationAllocating, Owner: "p2"},
		{Name: "af-2", NodeUUID: n2, ResourceClass: "silver", State: node.AllocationActive, Owner: "p1"},
		{Name: "af-3", ResourceClass: "silver", State: node.AllocationError},
	}
	for _, a := range as {
		a.UUID = newUUID()
		must(t, "CreateAllocation", s.CreateAllocation(ctx, a))
	}
	tests := []struct {
		name string
		q    node.AllocationQuery
		want []string
	}{
		{"none/all", node.AllocationQuery{}, []string{"af-0", "af-1", "af-2", "af-3"}},
		{"node", node.AllocationQuery{NodeUUID: n2}, []string{"af-2"}},
		{"resource-class", node.AllocationQuery{ResourceClass: "gold"}, []string{"af-0", "af-1"}},
		{"state", node.AllocationQuery{State: node.AllocationActive}, []string{"af-0", "af-2"}},
		{"owner", node.AllocationQuery{Owner: "p1"}, []string{"af-0", "af-2"}},
		{"combined", node.AllocationQuery{Owner: "p1", ResourceClass: "silver"}, []string{"af-2"}},
		{"combined/no-match", node.AllocationQuery{State: node.AllocationError, Owner: "p1"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ListAllocations(ctx, tc.q)
			must(t, "ListAllocations", err)
			var names []string
			for _, a := range got {
				names = append(names, a.Name)
			}
			if diff := cmp.Diff(tc.want, names, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("ListAllocations(%+v) mismatch (-want +got):\n%s", tc.q, diff)
			}
		})
	}
}

var allocationEntity = entity[*node.Allocation]{
	id:   func(a *node.Allocation) int64 { return a.ID },
	uuid: func(a *node.Allocation) string { return a.UUID },
	values: map[string]func(*node.Allocation) any{
		"id":         func(a *node.Allocation) any { return a.ID },
		"uuid":       func(a *node.Allocation) any { return a.UUID },
		"created_at": func(a *node.Allocation) any { return a.CreatedAt },
		"updated_at": func(a *node.Allocation) any { return a.UpdatedAt },
		"name":       func(a *node.Allocation) any { return a.Name },
	},
}

func testAllocationPaging(t *testing.T, s conductor.Store) {
	ctx := t.Context()
	var as []*node.Allocation
	for i := range 13 {
		a := &node.Allocation{UUID: newUUID(), State: node.AllocationAllocating, CreatedAt: base.Add(time.Duration(i%3) * time.Second)}
		if i%3 != 0 {
			a.Name = fmt.Sprintf("alloc%02d", (i*6)%13)
		}
		if i%2 == 0 {
			a.UpdatedAt = base.Add(time.Duration(i%4) * time.Minute)
		}
		must(t, "CreateAllocation", s.CreateAllocation(ctx, a))
		as = append(as, a)
	}
	// Allocations have no address: every PortSortKeys key but that one.
	var keys []string
	for _, k := range node.PortSortKeys {
		if k != "address" {
			keys = append(keys, k)
		}
	}
	checkPaging(t, allocationEntity, keys, as, func(p node.Page) ([]*node.Allocation, error) {
		return s.ListAllocations(ctx, node.AllocationQuery{Page: p})
	})
	t.Run("errors", func(t *testing.T) {
		checkListErrors(t, "Allocation", "address", func(p node.Page) error {
			_, err := s.ListAllocations(ctx, node.AllocationQuery{Page: p})
			return err
		})
	})
}

// ---- conductors ----

func testConductors(t *testing.T, s conductor.Store) {
	ctx := t.Context()
	_, err := s.GetConductor(ctx, "nope")
	wantErr(t, "GetConductor(missing)", err, node.ErrNotFound, "Conductor nope could not be found.")
	wantErr(t, "UnregisterConductor(missing)", s.UnregisterConductor(ctx, "nope"), node.ErrNotFound, "Conductor nope could not be found.")
	list, err := s.ListConductors(ctx)
	if err != nil || len(list) != 0 {
		t.Errorf("ListConductors(empty store) = %d, %v; want none", len(list), err)
	}

	b := &node.Conductor{Hostname: "cond-b", ConductorGroup: "east", Drivers: []string{"ipmi", "redfish"}}
	must(t, "RegisterConductor(b)", s.RegisterConductor(ctx, b))
	if !b.Online {
		t.Errorf("RegisterConductor(b) left Online false, want true")
	}
	wantRecent(t, "RegisterConductor(b) CreatedAt", b.CreatedAt)
	wantRecent(t, "RegisterConductor(b) UpdatedAt", b.UpdatedAt)
	got, err := s.GetConductor(ctx, "cond-b")
	must(t, "GetConductor(b)", err)
	if diff := cmp.Diff(b, got, cmpOpts); diff != "" {
		t.Errorf("GetConductor(b) mismatch (-want +got):\n%s", diff)
	}
	wantUTC(t, "GetConductor", got.CreatedAt, got.UpdatedAt)

	a := &node.Conductor{Hostname: "cond-a", Drivers: []string{"fake-hardware"}}
	must(t, "RegisterConductor(a)", s.RegisterConductor(ctx, a))
	must(t, "UnregisterConductor(a)", s.UnregisterConductor(ctx, "cond-a"))
	got, err = s.GetConductor(ctx, "cond-a")
	must(t, "GetConductor(a)", err)
	if got.Online {
		t.Errorf("GetConductor(a) after UnregisterConductor: Online = true, want false")
	}
	if got.UpdatedAt.Before(a.UpdatedAt) {
		t.Errorf("UnregisterConductor moved UpdatedAt back: %v < %v", got.UpdatedAt, a.UpdatedAt)
	}

	// Registering again refreshes the row and keeps its creation time.
	firstCreated, firstUpdated := b.CreatedAt, b.UpdatedAt
	time.Sleep(2 * time.Millisecond)
	b2 := &node.Conductor{Hostname: "cond-b", ConductorGroup: "west", Drivers: []string{"ipmi"}}
	must(t, "RegisterConductor(b again)", s.RegisterConductor(ctx, b2))
	got, err = s.GetConductor(ctx, "cond-b")
	must(t, "GetConductor(b)", err)
	if diff := cmp.Diff(firstCreated, got.CreatedAt, cmpOpts); diff != "" {
		t.Errorf("re-register changed CreatedAt (-want +got):\n%s", diff)
	}
	if !got.UpdatedAt.After(firstUpdated) {
		t.Errorf("re-register UpdatedAt = %v, want after %v", got.UpdatedAt, firstUpdated)
	}
	if got.ConductorGroup != "west" || !cmp.Equal(got.Drivers, []string{"ipmi"}) || !got.Online {
		t.Errorf("re-register = %+v, want group west, drivers [ipmi], online", got)
	}
	must(t, "RegisterConductor(a again)", s.RegisterConductor(ctx, a))

	c := &node.Conductor{Hostname: "cond-c"}
	must(t, "RegisterConductor(c)", s.RegisterConductor(ctx, c))
	must(t, "UnregisterConductor(c)", s.UnregisterConductor(ctx, "cond-c"))
	list, err = s.ListConductors(ctx)
	must(t, "ListConductors", err)
	type row struct {
		Host   string
		Online bool
	}
	var rows []row
	for _, c := range list {
		rows = append(rows, row{c.Hostname, c.Online})
	}
	want := []row{{"cond-a", true}, {"cond-b", true}, {"cond-c", false}}
	if diff := cmp.Diff(want, rows); diff != "" {
		t.Errorf("ListConductors mismatch (-want +got):\n%s", diff)
	}
}
