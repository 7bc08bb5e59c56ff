package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ferrumhq/ferrum/controller/conductor"
	"github.com/ferrumhq/ferrum/controller/node"
)

// RunShared checks what several controllers on one database rely on. newPair returns two
// handles opened separately on the same new, empty database (two controllers' stores); the
// suite does not close them. A backend that cannot be shared need not run it.
func RunShared(t *testing.T, newPair func(t *testing.T) (conductor.Store, conductor.Store)) {
	tests := []struct {
		name string
		fn   func(t *testing.T, a, b conductor.Store)
	}{
		{"reserve-race-across-handles", testSharedReserveRace},
		{"dead-holder-released-by-another", testSharedDeadHolder},
		{"conductor-heartbeats-seen-by-another", testSharedHeartbeats},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, b := newPair(t)
			tc.fn(t, a, b)
		})
	}
}

// testSharedReserveRace: controllers racing for one node through their own handles; exactly
// one wins each round, the others learn who.
func testSharedReserveRace(t *testing.T, a, b conductor.Store) {
	ctx := t.Context()
	n := createNode(t, a, "shared-race")
	stores := []conductor.Store{a, b}
	for round := range 5 {
		const racers = 16
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make([]error, racers)
		for i := range racers {
			wg.Go(func() {
				<-start
				_, errs[i] = stores[i%2].ReserveNode(ctx, n.UUID, fmt.Sprintf("ctl-%02d", i), time.Now().Add(time.Minute))
			})
		}
		close(start)
		wg.Wait()
		winner := ""
		for i, err := range errs {
			if err == nil {
				if winner != "" {
					t.Fatalf("round %d: both %s and ctl-%02d reserved the node", round, winner, i)
				}
				winner = fmt.Sprintf("ctl-%02d", i)
			}
		}
		if winner == "" {
			t.Fatalf("round %d: nobody reserved the node: %v", round, errs)
		}
		for i, err := range errs {
			if err != nil {
				wantLocked(t, fmt.Sprintf("round %d: ReserveNode(ctl-%02d)", round, i), err, n.UUID, winner)
			}
		}
		must(t, "ReleaseNode(winner)", b.ReleaseNode(ctx, n.UUID, winner))
	}
}

// testSharedDeadHolder: a controller declared dead has its reservations released by another;
// its later writes fail with ErrLockLost and its renewals renew nothing.
func testSharedDeadHolder(t *testing.T, a, b conductor.Store) {
	ctx := t.Context()
	n1 := createNode(t, a, "dead-1")
	n2 := createNode(t, a, "dead-2")
	r1 := reserve(t, a, n1.UUID, "ctl-dead")
	reserve(t, a, n2.UUID, "ctl-dead")
	k, err := b.ReleaseReservations(ctx, "ctl-dead")
	if err != nil || k != 2 {
		t.Fatalf("ReleaseReservations(ctl-dead) through the other handle = %d, %v; want 2, nil", k, err)
	}
	r, err := b.ReserveNode(ctx, n1.UUID, "ctl-live", time.Now().Add(time.Minute))
	must(t, "ReserveNode(ctl-live) after the release", err)
	r1.Description = "written by the dead holder"
	wantLockLost(t, "SaveNode(dead holder)", a.SaveNode(ctx, r1, "ctl-dead"))
	if k, err := a.RenewReservations(ctx, "ctl-dead", time.Now().Add(time.Hour)); err != nil || k != 0 {
		t.Errorf("RenewReservations(ctl-dead) = %d, %v; want 0, nil", k, err)
	}
	r.Description = "written by the new holder"
	must(t, "SaveNode(new holder)", b.SaveNode(ctx, r, "ctl-live"))
	got, err := a.GetNode(ctx, n1.UUID)
	must(t, "GetNode", err)
	if got.Description != "written by the new holder" || got.Reservation != "ctl-live" {
		t.Errorf("node after take-over: description %q reservation %q", got.Description, got.Reservation)
	}
}

// testSharedHeartbeats: a conductor's registrations are visible to the other handle at once,
// with updated_at moving forward.
func testSharedHeartbeats(t *testing.T, a, b conductor.Store) {
	ctx := t.Context()
	must(t, "RegisterConductor(ctl-a)", a.RegisterConductor(ctx, &node.Conductor{Hostname: "ctl-a", Drivers: []string{"fake-hardware"}}))
	first, err := b.GetConductor(ctx, "ctl-a")
	must(t, "GetConductor(ctl-a) through the other handle", err)
	if !first.Online {
		t.Errorf("ctl-a seen offline after registering")
	}
	time.Sleep(2 * time.Millisecond)
	must(t, "RegisterConductor(ctl-a) again", a.RegisterConductor(ctx, &node.Conductor{Hostname: "ctl-a", Drivers: []string{"fake-hardware"}}))
	again, err := b.GetConductor(ctx, "ctl-a")
	must(t, "GetConductor(ctl-a)", err)
	if !again.UpdatedAt.After(first.UpdatedAt) {
		t.Errorf("heartbeat: updated_at %v, want after %v", again.UpdatedAt, first.UpdatedAt)
	}
	must(t, "UnregisterConductor(ctl-a)", a.UnregisterConductor(ctx, "ctl-a"))
	list, err := b.ListConductors(ctx)
	must(t, "ListConductors", err)
	if len(list) != 1 || list[0].Online {
		t.Errorf("ListConductors after unregister = %+v, want ctl-a offline", list)
	}
}
