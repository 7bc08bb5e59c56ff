package storetest

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/ferrumhq/ferrum/controller/conductor"
	"github.com/ferrumhq/ferrum/controller/node"
)

// newNode is a minimal node.
func newNode(name string) *node.Node {
	return &node.Node{UUID: newUUID(), Name: name, Driver: "fake-hardware", ProvisionState: node.Enroll}
}

// createNode stores a new minimal node and returns it.
func createNode(t *testing.T, s conductor.Store, name string) *node.Node {
	t.Helper()
	n := newNode(name)
	must(t, fmt.Sprintf("CreateNode(%q)", name), s.CreateNode(t.Context(), n))
	return n
}

// reserve takes n's lock for owner for a minute.
func reserve(t *testing.T, s conductor.Store, ident, owner string) *node.Node {
	t.Helper()
	n, err := s.ReserveNode(t.Context(), ident, owner, time.Now().Add(time.Minute))
	must(t, fmt.Sprintf("ReserveNode(%q, %q)", ident, owner), err)
	return n
}

// fullNode has every field set; seed varies every value.
func fullNode(seed int) *node.Node {
	v := func(s string) string { return fmt.Sprintf("%s-%d", s, seed) }
	t0 := base.Add(time.Duration(seed) * time.Hour)
	return &node.Node{
		UUID:   newUUID(),
		Name:   v("full"),
		Driver: v("ipmi"),
		DriverInfo: map[string]any{"ipmi_address": v("10.0.0.1"), "ipmi_port": float64(623 + seed),
			"nested": map[string]any{"list": []any{"a", float64(seed), true, nil}, "empty": map[string]any{}}},
		DriverInternalInfo: map[string]any{"agent_url": v("http://agent"), "clean_steps": []any{map[string]any{"step": "erase"}}},
		Interfaces: node.Interfaces{Bios: v("bios"), Boot: v("boot"), Console: v("console"),
			Deploy: v("deploy"), Firmware: v("firmware"), Inspect: v("inspect"),
			Management: v("management"), Network: v("network"), Power: v("power"), Raid: v("raid"),
			Rescue: v("rescue"), Storage: v("storage"), Vendor: v("vendor")},
		Properties:           map[string]any{"cpus": float64(8 * seed), "memory_mb": float64(65536), "capabilities": v("boot_mode:uefi")},
		Extra:                map[string]any{"rack": v("r"), "unicode": "ünï ✓"},
		InstanceInfo:         map[string]any{"image_source": v("http://image"), "root_gb": float64(40)},
		InstanceUUID:         newUUID(),
		NetworkData:          map[string]any{"links": []any{map[string]any{"id": v("eth0")}}},
		ProvisionState:       node.Active,
		TargetProvisionState: node.Deleting,
		ProvisionUpdatedAt:   t0.Add(time.Minute),
		PowerState:           node.PowerOn,
		TargetPowerState:     node.PowerOff,
		LastError:            v("last error"),
		Maintenance:          true,
		MaintenanceReason:    v("maintenance reason"),
		Fault:                node.FaultPowerFailure,
		Reservation:          v("ignored-on-create"),
		ReservationExpires:   t0.Add(time.Hour),
		ConductorGroup:       v("group"),
		ResourceClass:        v("class"),
		Traits:               []string{v("CUSTOM_A"), v("CUSTOM_B")},
		Owner:                v("owner"),
		Lessee:               v("lessee"),
		Description:          v("description"),
		ChassisUUID:          newUUID(),
		AllocationUUID:       newUUID(),
		Shard:                v("shard"),
		AutomatedClean:       ptr(seed%2 == 0),
		Protected:            true,
		ProtectedReason:      v("protected reason"),
		Retired:              true,
		RetiredReason:        v("retired reason"),
		ConsoleEnabled:       true,
		BootMode:             "uefi",
		SecureBoot:           ptr(seed%2 == 1),
		RaidConfig:           map[string]any{"logical_disks": []any{map[string]any{"size_gb": float64(100)}}},
		TargetRaidConfig:     map[string]any{"logical_disks": []any{map[string]any{"raid_level": v("1")}}},
		CleanStep:            node.Step{"interface": "deploy", "step": v("erase_devices")},
		DeployStep:           node.Step{"interface": "deploy", "step": v("write_image"), "args": map[string]any{"x": float64(seed)}},
		ServiceStep:          node.Step{"interface": "raid", "step": v("apply")},
		InspectionStartedAt:  t0.Add(2 * time.Minute),
		InspectionFinishedAt: t0.Add(3 * time.Minute),
		Inventory:            json.RawMessage(fmt.Sprintf(`{"cpu": {"count": %d}, "disks": [{"name": "/dev/sda"}]}`, seed)),
		CreatedAt:            t0,
		UpdatedAt:            t0.Add(4 * time.Minute),
	}
}

// nodeOpts compares nodes as stored.
var nodeOpts = cmp.Options{cmpOpts}

func testNodeCRUD(t *testing.T, s conductor.Store) {
	ctx := t.Context()
	before := time.Now()
	a := newNode("crud-a")
	must(t, "CreateNode(a)", s.CreateNode(ctx, a))
	if a.ID == 0 {
		t.Errorf("CreateNode(a) left ID 0, want it filled")
	}
	wantRecent(t, "CreateNode(a) CreatedAt", a.CreatedAt)
	b := createNode(t, s, "crud-b")
	if b.ID <= a.ID {
		t.Errorf("IDs: b.ID = %d, a.ID = %d, want b's greater", b.ID, a.ID)
	}

	for _, ident := range []string{a.UUID, a.Name} {
		got, err := s.GetNode(ctx, ident)
		must(t, "GetNode("+ident+")", err)
		if diff := cmp.Diff(a, got, nodeOpts); diff != "" {
			t.Errorf("GetNode(%q) mismatch (-want +got):\n%s", ident, diff)
		}
		wantUTC(t, "GetNode", got.CreatedAt)
	}

	// Returned nodes are the caller's: changing one changes nothing stored or returned later.
	got1, err := s.GetNode(ctx, a.UUID)
	must(t, "GetNode", err)
	got1.Extra["changed"] = true
	got1.DriverInfo["x"] = "y"
	got1.Traits = append(got1.Traits, "CUSTOM_X")
	got2, err := s.GetNode(ctx, a.UUID)
	must(t, "GetNode again", err)
	if diff := cmp.Diff(a, got2, nodeOpts); diff != "" {
		t.Errorf("GetNode after changing a returned node mismatch (-want +got):\n%s", diff)
	}

	r := reserve(t, s, a.UUID, "host-1")
	r.Name = "crud-renamed"
	r.Driver = "ipmi"
	r.ProvisionState = node.Manageable
	r.Extra = map[string]any{"k": "v"}
	r.Maintenance = true
	must(t, "SaveNode", s.SaveNode(ctx, r, "host-1"))
	if r.UpdatedAt.Before(before.Add(-time.Second)) || r.UpdatedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("SaveNode set UpdatedAt = %v, want about now", r.UpdatedAt)
	}
	got, err := s.GetNode(ctx, "crud-renamed")
	must(t, "GetNode(renamed)", err)
	if diff := cmp.Diff(r, got, nodeOpts); diff != "" {
		t.Errorf("GetNode after SaveNode mismatch (-want +got):\n%s", diff)
	}
	_, err = s.GetNode(ctx, "crud-a")
	wantErr(t, "GetNode(old name)", err, node.ErrNotFound, "Node crud-a could not be found.")

	must(t, "DeleteNode", s.DeleteNode(ctx, a.UUID, "host-1"))
	_, err = s.GetNode(ctx, a.UUID)
	wantErr(t, "GetNode(deleted)", err, node.ErrNotFound, "Node "+a.UUID+" could not be found.")
	all, err := s.ListNodes(ctx, node.NodeQuery{})
	must(t, "ListNodes", err)
	if len(all) != 1 || all[0].UUID != b.UUID {
		t.Errorf("ListNodes after delete = %d nodes, want only b", len(all))
	}
}

func testNodeRoundTrip(t *testing.T, s conductor.Store) {
	ctx := t.Context()
	in := fullNode(1)
	wantAllSet(t, in, "ID", "Agent") // Agent is kept beside the node (agentlink tests)
	want := fullNode(1)
	want.UUID, want.InstanceUUID, want.ChassisUUID, want.AllocationUUID = in.UUID, in.InstanceUUID, in.ChassisUUID, in.AllocationUUID
	want.Reservation, want.ReservationExpires = "", time.Time{} // created unreserved

	must(t, "CreateNode(full)", s.CreateNode(ctx, in))
	want.ID = in.ID
	check := func(stage string, want *node.Node) {
		t.Helper()
		got, err := s.GetNode(ctx, want.UUID)
		must(t, stage+": GetNode", err)
		if diff := cmp.Diff(want, got, nodeOpts); diff != "" {
			t.Errorf("%s: GetNode mismatch (-want +got):\n%s", stage, diff)
		}
		wantUTC(t, stage, got.CreatedAt, got.UpdatedAt, got.ProvisionUpdatedAt,
			got.InspectionStartedAt, got.InspectionFinishedAt, got.ReservationExpires)
		list, err := s.ListNodes(ctx, node.NodeQuery{})
		must(t, stage+": ListNodes", err)
		if len(list) != 1 {
			t.Fatalf("%s: ListNodes = %d nodes, want 1", stage, len(list))
		}
		if diff := cmp.Diff(want, list[0], nodeOpts); diff != "" {
			t.Errorf("%s: ListNodes mismatch (-want +got):\n%s", stage, diff)
		}
	}
	check("after create", want)

	until := time.Now().Add(time.Hour).In(base.Location()) // nanoseconds, non-UTC zone
	r, err := s.ReserveNode(ctx, in.UUID, "rt-owner", until)
	must(t, "ReserveNode", err)
	want.Reservation, want.ReservationExpires = "rt-owner", until
	if diff := cmp.Diff(want, r, nodeOpts); diff != "" {
		t.Errorf("ReserveNode returned mismatch (-want +got):\n%s", diff)
	}
	check("after reserve", want)

	// Every field changed, saved by the holder.
	m := fullNode(2)
	m.ID, m.UUID = in.ID, in.UUID
	must(t, "SaveNode(every field changed)", s.SaveNode(ctx, m, "rt-owner"))
	m.Reservation, m.ReservationExpires = "rt-owner", until // SaveNode leaves the reservation alone
	check("after save", m)
}

func testNodeErrors(t *testing.T, s conductor.Store) {
	ctx := t.Context()
	a := newNode("err-a")
	a.InstanceUUID = newUUID()
	must(t, "CreateNode(a)", s.CreateNode(ctx, a))
	b := createNode(t, s, "err-b")
	reserve(t, s, b.UUID, "host-b")
	c := createNode(t, s, "err-c")
	reserve(t, s, c.UUID, "host-c")
	missing := newUUID()

	tests := []struct {
		name string
		call func() error
		kind error  // node.ErrLockLost: only errors.Is is checked
		msg  string // Ironic's message
	}{
		{"get/missing-uuid", func() error { _, err := s.GetNode(ctx, missing); return err },
			node.ErrNotFound, "Node " + missing + " could not be found."},
		{"get/missing-name", func() error { _, err := s.GetNode(ctx, "no-such-node"); return err },
			node.ErrNotFound, "Node no-such-node could not be found."},
		{"create/duplicate-uuid", func() error { n := newNode("other"); n.UUID = a.UUID; return s.CreateNode(ctx, n) },
			node.ErrConflict, "A node with UUID " + a.UUID + " already exists."},
		{"create/duplicate-name", func() error { return s.CreateNode(ctx, newNode("err-a")) },
			node.ErrConflict, "A node with name err-a already exists."},
		{"create/duplicate-instance", func() error {
			n := newNode("other")
			n.UUID = "00000000-0000-0000-0000-000000000001"
			n.InstanceUUID = a.InstanceUUID
			return s.CreateNode(ctx, n)
		}, node.ErrConflict, "Instance " + a.InstanceUUID + " is already associated with a node, it cannot be associated with this other node 00000000-0000-0000-0000-000000000001"},
		{"save/duplicate-name", func() error {
			n, _ := s.GetNode(ctx, b.UUID)
			n.Name = "err-a"
			return s.SaveNode(ctx, n, "host-b")
		}, node.ErrConflict, "A node with name err-a already exists."},
		{"save/duplicate-instance", func() error {
			n, _ := s.GetNode(ctx, b.UUID)
			n.InstanceUUID = a.InstanceUUID
			return s.SaveNode(ctx, n, "host-b")
		}, node.ErrConflict, "Instance " + a.InstanceUUID + " is already associated with a node, it cannot be associated with this other node " + b.UUID},
		{"save/unreserved", func() error { n, _ := s.GetNode(ctx, a.UUID); return s.SaveNode(ctx, n, "host-b") },
			node.ErrLockLost, ""},
		{"save/empty-owner", func() error { n, _ := s.GetNode(ctx, a.UUID); return s.SaveNode(ctx, n, "") },
			node.ErrLockLost, ""},
		{"save/reserved-by-other", func() error { n, _ := s.GetNode(ctx, c.UUID); return s.SaveNode(ctx, n, "host-b") },
			node.ErrLockLost, ""},
		{"save/missing", func() error { n := newNode("x"); n.UUID = missing; return s.SaveNode(ctx, n, "host-b") },
			node.ErrNotFound, "Node " + missing + " could not be found."},
		{"delete/unreserved", func() error { return s.DeleteNode(ctx, a.UUID, "host-b") }, node.ErrLockLost, ""},
		{"delete/reserved-by-other", func() error { return s.DeleteNode(ctx, c.UUID, "host-b") }, node.ErrLockLost, ""},
		{"delete/missing", func() error { return s.DeleteNode(ctx, missing, "host-b") },
			node.ErrNotFound, "Node " + missing + " could not be found."},
		{"reserve/missing-uuid", func() error { _, err := s.ReserveNode(ctx, missing, "h", time.Now().Add(time.Minute)); return err },
			node.ErrNotFound, "Node " + missing + " could not be found."},
		{"reserve/missing-name", func() error { _, err := s.ReserveNode(ctx, "nope", "h", time.Now().Add(time.Minute)); return err },
			node.ErrNotFound, "Node nope could not be found."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if tc.kind == node.ErrLockLost {
				wantLockLost(t, tc.name, err)
				return
			}
			wantErr(t, tc.name, err, tc.kind, tc.msg)
		})
	}

	// Failed writes changed nothing.
	for _, want := range []*node.Node{a, b, c} {
		got, err := s.GetNode(ctx, want.UUID)
		must(t, "GetNode", err)
		if got.Name != want.Name || got.InstanceUUID != want.InstanceUUID {
			t.Errorf("after failed writes GetNode(%s) = name %q instance %q, want %q %q", want.Name, got.Name, got.InstanceUUID, want.Name, want.InstanceUUID)
		}
	}
	if _, err := s.GetNode(ctx, "other"); err == nil {
		t.Errorf("a failed CreateNode left node %q behind", "other")
	}
}

func testNodeEmptyUnique(t *testing.T, s conductor.Store) {
	// Empty name and instance_uuid are "unset", not a value that must be unique.
	for i := range 3 {
		n := newNode("")
		must(t, fmt.Sprintf("CreateNode(unnamed %d)", i), s.CreateNode(t.Context(), n))
		r := reserve(t, s, n.UUID, "h")
		must(t, fmt.Sprintf("SaveNode(unnamed %d)", i), s.SaveNode(t.Context(), r, "h"))
	}
	_, err := s.GetNode(t.Context(), "")
	wantErr(t, `GetNode("")`, err, node.ErrNotFound, "Node  could not be found.")
}

func testReserve(t *testing.T, s conductor.Store) {
	ctx := t.Context()
	a := createNode(t, s, "res-a")
	until := time.Now().Add(time.Minute)
	r, err := s.ReserveNode(ctx, a.UUID, "host-1", until)
	must(t, "ReserveNode(host-1)", err)
	if r.Reservation != "host-1" || cmp.Diff(until, r.ReservationExpires, cmpOpts) != "" {
		t.Errorf("ReserveNode = reservation %q until %v, want host-1 until %v", r.Reservation, r.ReservationExpires, until)
	}
	got, err := s.GetNode(ctx, a.UUID)
	must(t, "GetNode", err)
	if diff := cmp.Diff(r, got, nodeOpts); diff != "" {
		t.Errorf("GetNode after ReserveNode mismatch (-want +got):\n%s", diff)
	}

	_, err = s.ReserveNode(ctx, a.UUID, "host-2", until)
	wantLocked(t, "ReserveNode(host-2)", err, a.UUID, "host-1")
	_, err = s.ReserveNode(ctx, "res-a", "host-2", until)
	wantLocked(t, "ReserveNode(by name, host-2)", err, a.UUID, "host-1")
	_, err = s.ReserveNode(ctx, a.UUID, "host-1", until)
	wantLocked(t, "ReserveNode(host-1 again)", err, a.UUID, "host-1") // not re-entrant

	must(t, "ReleaseNode(not the holder)", s.ReleaseNode(ctx, a.UUID, "host-2"))
	if got, _ := s.GetNode(ctx, a.UUID); got.Reservation != "host-1" {
		t.Errorf("after ReleaseNode by another host, Reservation = %q, want host-1", got.Reservation)
	}

	// SaveNode does not write the reservation fields.
	r.Reservation, r.ReservationExpires = "someone-else", time.Now().Add(time.Hour)
	r.Description = "saved"
	must(t, "SaveNode", s.SaveNode(ctx, r, "host-1"))
	got, _ = s.GetNode(ctx, a.UUID)
	if got.Reservation != "host-1" || cmp.Diff(until, got.ReservationExpires, cmpOpts) != "" || got.Description != "saved" {
		t.Errorf("after SaveNode: reservation %q until %v, description %q; want host-1 until %v, saved",
			got.Reservation, got.ReservationExpires, got.Description, until)
	}

	must(t, "ReleaseNode(holder)", s.ReleaseNode(ctx, a.UUID, "host-1"))
	got, _ = s.GetNode(ctx, a.UUID)
	if got.Reservation != "" || !got.ReservationExpires.IsZero() {
		t.Errorf("after ReleaseNode: reservation %q until %v, want none", got.Reservation, got.ReservationExpires)
	}
	wantLockLost(t, "SaveNode after release", s.SaveNode(ctx, got, "host-1"))
	must(t, "ReleaseNode(not held)", s.ReleaseNode(ctx, a.UUID, "host-1"))
	must(t, "ReleaseNode(missing node)", s.ReleaseNode(ctx, newUUID(), "host-1"))

	r2, err := s.ReserveNode(ctx, "res-a", "host-2", until)
	must(t, "ReserveNode(by name, host-2) after release", err)
	if r2.UUID != a.UUID || r2.Reservation != "host-2" {
		t.Errorf("ReserveNode(by name) = %s reserved by %q, want %s by host-2", r2.UUID, r2.Reservation, a.UUID)
	}
}

func testReserveExpired(t *testing.T, s conductor.Store) {
	ctx := t.Context()
	a := createNode(t, s, "exp-a")
	past := time.Now().Add(-time.Second)
	r1, err := s.ReserveNode(ctx, a.UUID, "host-1", past)
	must(t, "ReserveNode(host-1, expired)", err)
	// An expired reservation nobody took is still its holder's.
	must(t, "SaveNode(expired holder)", s.SaveNode(ctx, r1, "host-1"))

	r2, err := s.ReserveNode(ctx, a.UUID, "host-2", time.Now().Add(time.Minute))
	must(t, "ReserveNode(host-2) over an expired reservation", err)
	if r2.Reservation != "host-2" {
		t.Errorf("ReserveNode over expired = reservation %q, want host-2", r2.Reservation)
	}
	wantLockLost(t, "SaveNode(previous holder)", s.SaveNode(ctx, r1, "host-1"))
	wantLockLost(t, "DeleteNode(previous holder)", s.DeleteNode(ctx, a.UUID, "host-1"))
	must(t, "SaveNode(new holder)", s.SaveNode(ctx, r2, "host-2"))
	_, err = s.ReserveNode(ctx, a.UUID, "host-1", time.Now().Add(time.Minute))
	wantLocked(t, "ReserveNode(host-1) over a live reservation", err, a.UUID, "host-2")
}

func testReserveRace(t *testing.T, s conductor.Store) {
	ctx := t.Context()
	a := createNode(t, s, "race")
	const racers = 20
	for round := range 5 {
		var (
			wg      sync.WaitGroup
			start   = make(chan struct{})
			errs    = make([]error, racers)
			winners = make([]*node.Node, racers)
		)
		for i := range racers {
			wg.Go(func() {
				<-start
				winners[i], errs[i] = s.ReserveNode(ctx, a.UUID, fmt.Sprintf("host-%02d", i), time.Now().Add(time.Minute))
			})
		}
		close(start)
		wg.Wait()
		winner := ""
		for i, err := range errs {
			if err == nil {
				if winner != "" {
					t.Fatalf("round %d: both %s and host-%02d reserved the node", round, winner, i)
				}
				winner = winners[i].Reservation
			}
		}
		if winner == "" {
			t.Fatalf("round %d: no goroutine reserved the node: %v", round, errs)
		}
		for i, err := range errs {
			if err != nil {
				wantLocked(t, fmt.Sprintf("round %d: ReserveNode(host-%02d)", round, i), err, a.UUID, winner)
			}
		}
		must(t, "ReleaseNode(winner)", s.ReleaseNode(ctx, a.UUID, winner))
	}
}

func testRenewRelease(t *testing.T, s conductor.Store) {
	ctx := t.Context()
	var ns []*node.Node
	for i := range 5 {
		ns = append(ns, createNode(t, s, fmt.Sprintf("rr-%d", i)))
	}
	soon := time.Now().Add(time.Minute)
	for _, n := range ns[:3] {
		if _, err := s.ReserveNode(ctx, n.UUID, "host-1", soon); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.ReserveNode(ctx, ns[3].UUID, "host-2", soon); err != nil {
		t.Fatal(err)
	}

	later := time.Now().Add(time.Hour)
	k, err := s.RenewReservations(ctx, "host-1", later)
	if err != nil || k != 3 {
		t.Errorf("RenewReservations(host-1) = %d, %v; want 3, nil", k, err)
	}
	expires := map[int]time.Time{0: later, 1: later, 2: later, 3: soon, 4: {}}
	for i, want := range expires {
		got, _ := s.GetNode(ctx, ns[i].UUID)
		if diff := cmp.Diff(want, got.ReservationExpires, cmpOpts); diff != "" {
			t.Errorf("node %d ReservationExpires after renew (-want +got):\n%s", i, diff)
		}
	}
	if k, err := s.RenewReservations(ctx, "nobody", later); err != nil || k != 0 {
		t.Errorf("RenewReservations(nobody) = %d, %v; want 0, nil", k, err)
	}

	k, err = s.ReleaseReservations(ctx, "host-1")
	if err != nil || k != 3 {
		t.Errorf("ReleaseReservations(host-1) = %d, %v; want 3, nil", k, err)
	}
	holders := map[int]string{0: "", 1: "", 2: "", 3: "host-2", 4: ""}
	for i, want := range holders {
		got, _ := s.GetNode(ctx, ns[i].UUID)
		if got.Reservation != want {
			t.Errorf("node %d Reservation after ReleaseReservations = %q, want %q", i, got.Reservation, want)
		}
	}
	if k, err := s.ReleaseReservations(ctx, "host-1"); err != nil || k != 0 {
		t.Errorf("ReleaseReservations(host-1) again = %d, %v; want 0, nil", k, err)
	}
	if _, err := s.ReserveNode(ctx, ns[0].UUID, "host-3", soon); err != nil {
		t.Errorf("ReserveNode after ReleaseReservations = %v, want nil", err)
	}
}

func testNodeFilters(t *testing.T, s conductor.Store) {
	ctx := t.Context()
	inst1, inst2, chassis := newUUID(), newUUID(), newUUID()
	fixtures := []*node.Node{
		{Name: "f0", Driver: "ipmi", ProvisionState: node.Available, ResourceClass: "gold", Owner: "o1",
			Shard: "s1", Description: "rack 1 top"},
		{Name: "f1", Driver: "redfish", ProvisionState: node.Active, Maintenance: true, InstanceUUID: inst1,
			ConductorGroup: "east", ResourceClass: "gold", Fault: node.FaultPowerFailure, Owner: "o2",
			Lessee: "l1", ChassisUUID: chassis, Shard: "s2", Description: "Rack 2"},
		{Name: "f2", Driver: "ipmi", ProvisionState: node.Active, InstanceUUID: inst2, Retired: true,
			ConductorGroup: "east", ResourceClass: "silver", Owner: "o1", Lessee: "l1", ChassisUUID: chassis,
			Description: "rack 10 bottom"},
		{Name: "f3", Driver: "fake-hardware", ProvisionState: node.Enroll, Maintenance: true,
			ConductorGroup: "west", Fault: node.FaultCleanFailure, Lessee: "l2", Shard: "s1"},
	}
	for _, n := range fixtures {
		n.UUID = newUUID()
		must(t, "CreateNode("+n.Name+")", s.CreateNode(ctx, n))
	}

	tests := []struct {
		name string
		q    node.NodeQuery
		want []string
	}{
		{"none/all", node.NodeQuery{}, []string{"f0", "f1", "f2", "f3"}},
		{"provision-state", node.NodeQuery{ProvisionState: node.Active}, []string{"f1", "f2"}},
		{"maintenance/true", node.NodeQuery{Maintenance: ptr(true)}, []string{"f1", "f3"}},
		{"maintenance/false", node.NodeQuery{Maintenance: ptr(false)}, []string{"f0", "f2"}},
		{"associated/true", node.NodeQuery{Associated: ptr(true)}, []string{"f1", "f2"}},
		{"associated/false", node.NodeQuery{Associated: ptr(false)}, []string{"f0", "f3"}},
		{"retired/true", node.NodeQuery{Retired: ptr(true)}, []string{"f2"}},
		{"retired/false", node.NodeQuery{Retired: ptr(false)}, []string{"f0", "f1", "f3"}},
		{"driver", node.NodeQuery{Driver: "ipmi"}, []string{"f0", "f2"}},
		{"instance-uuid", node.NodeQuery{InstanceUUID: inst2}, []string{"f2"}},
		{"instance-uuid/unknown", node.NodeQuery{InstanceUUID: newUUID()}, nil},
		{"conductor-group/empty-group", node.NodeQuery{ConductorGroup: ptr("")}, []string{"f0"}},
		{"conductor-group/named", node.NodeQuery{ConductorGroup: ptr("east")}, []string{"f1", "f2"}},
		{"resource-class", node.NodeQuery{ResourceClass: "gold"}, []string{"f0", "f1"}},
		{"fault", node.NodeQuery{Fault: node.FaultCleanFailure}, []string{"f3"}},
		{"owner", node.NodeQuery{Owner: "o1"}, []string{"f0", "f2"}},
		{"lessee", node.NodeQuery{Lessee: "l1"}, []string{"f1", "f2"}},
		{"chassis", node.NodeQuery{ChassisUUID: chassis}, []string{"f1", "f2"}},
		{"shard", node.NodeQuery{Shard: "s1"}, []string{"f0", "f3"}},
		{"description/substring", node.NodeQuery{DescriptionContains: "rack 1"}, []string{"f0", "f2"}},
		{"description/case-sensitive", node.NodeQuery{DescriptionContains: "Rack"}, []string{"f1"}},
		{"description/no-wildcards", node.NodeQuery{DescriptionContains: "rack%"}, nil},
		{"combined", node.NodeQuery{Driver: "ipmi", ProvisionState: node.Active, Lessee: "l1"}, []string{"f2"}},
		{"combined/no-match", node.NodeQuery{Driver: "redfish", Maintenance: ptr(false)}, nil},
		{"filter-and-page", node.NodeQuery{Lessee: "l1", Page: node.Page{Limit: 1, SortKey: "name", SortDir: "desc"}}, []string{"f2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ListNodes(ctx, tc.q)
			must(t, "ListNodes", err)
			var names []string
			for _, n := range got {
				names = append(names, n.Name)
			}
			if diff := cmp.Diff(tc.want, names, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("ListNodes(%+v) names mismatch (-want +got):\n%s", tc.q, diff)
			}
		})
	}
}

func testDeleteCascade(t *testing.T, s conductor.Store) {
	ctx := t.Context()
	a := createNode(t, s, "del-a")
	b := createNode(t, s, "del-b")
	pgA := newPortgroup(a.UUID, "pg-a", "52:54:00:00:0a:00")
	pgB := newPortgroup(b.UUID, "pg-b", "52:54:00:00:0b:00")
	for _, pg := range []*node.Portgroup{pgA, pgB} {
		must(t, "CreatePortgroup", s.CreatePortgroup(ctx, pg))
	}
	pa1 := newPort(a.UUID, "52:54:00:00:0a:01")
	pa1.PortgroupUUID = pgA.UUID
	pa2 := newPort(a.UUID, "52:54:00:00:0a:02")
	pb := newPort(b.UUID, "52:54:00:00:0b:01")
	pb.PortgroupUUID = pgB.UUID
	for _, p := range []*node.Port{pa1, pa2, pb} {
		must(t, "CreatePort", s.CreatePort(ctx, p))
	}

	reserve(t, s, a.UUID, "host-1")
	must(t, "DeleteNode(a)", s.DeleteNode(ctx, a.UUID, "host-1"))

	for _, p := range []*node.Port{pa1, pa2} {
		_, err := s.GetPort(ctx, p.UUID)
		wantErr(t, "GetPort(port of deleted node)", err, node.ErrNotFound, "Port "+p.UUID+" could not be found.")
	}
	_, err := s.GetPortgroup(ctx, pgA.UUID)
	wantErr(t, "GetPortgroup(portgroup of deleted node)", err, node.ErrNotFound, "Portgroup "+pgA.UUID+" could not be found.")
	ports, err := s.ListPorts(ctx, node.PortQuery{})
	must(t, "ListPorts", err)
	if len(ports) != 1 || ports[0].UUID != pb.UUID {
		t.Errorf("ListPorts after DeleteNode(a) = %d ports, want only b's", len(ports))
	}
	pgs, err := s.ListPortgroups(ctx, node.PortgroupQuery{})
	must(t, "ListPortgroups", err)
	if len(pgs) != 1 || pgs[0].UUID != pgB.UUID {
		t.Errorf("ListPortgroups after DeleteNode(a) = %d portgroups, want only b's", len(pgs))
	}
	// The name is free again.
	createNode(t, s, "del-a")
}
