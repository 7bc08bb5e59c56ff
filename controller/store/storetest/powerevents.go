package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ferrumhq/ferrum/controller/conductor"
	"github.com/ferrumhq/ferrum/controller/node"
)

// outboxStore is what controller/nova delivers the power event outbox with.
type outboxStore interface {
	DuePowerEvents(ctx context.Context, now time.Time, limit int) ([]*node.PowerEvent, error)
	UpdatePowerEvents(ctx context.Context, evs []*node.PowerEvent) error
	ListPowerEvents(ctx context.Context, q node.PowerEventQuery) ([]*node.PowerEvent, error)
	PowerEventStats(ctx context.Context) (node.PowerEventStats, error)
	PrunePowerEvents(ctx context.Context, before time.Time) (int, error)
}

func asOutbox(t *testing.T, s conductor.Store) outboxStore {
	t.Helper()
	o, ok := s.(outboxStore)
	if !ok {
		t.Fatalf("%T does not keep the power event outbox", s)
	}
	return o
}

// powerChange saves n (reserved by "c1") with a new power state and its event.
func powerChange(t *testing.T, s conductor.Store, n *node.Node, instance, state string) *node.PowerEvent {
	t.Helper()
	n.PowerState = state
	ev := &node.PowerEvent{NodeUUID: n.UUID, InstanceUUID: instance, PowerState: state}
	if err := s.SaveNodeWithEvent(context.Background(), n, "c1", ev); err != nil {
		t.Fatalf("SaveNodeWithEvent: %v", err)
	}
	if ev.ID == 0 || ev.Status != node.EventPending || ev.CreatedAt.IsZero() {
		t.Fatalf("SaveNodeWithEvent left %+v", ev)
	}
	return ev
}

func ids(evs []*node.PowerEvent) []int64 {
	out := []int64{}
	for _, e := range evs {
		out = append(out, e.ID)
	}
	return out
}

func testPowerEventQueue(t *testing.T, s conductor.Store) {
	ctx := context.Background()
	o := asOutbox(t, s)
	const inst1, inst2 = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
	a := reserve(t, s, createNode(t, s, "a").UUID, "c1")
	b := reserve(t, s, createNode(t, s, "b").UUID, "c1")

	a1 := powerChange(t, s, a, inst1, node.PowerOff)
	b1 := powerChange(t, s, b, inst2, node.PowerOn)
	// The node's power state is written with the event.
	got, err := s.GetNode(ctx, a.UUID)
	if err != nil || got.PowerState != node.PowerOff {
		t.Fatalf("GetNode = %v, %v; want power off", got, err)
	}
	due, err := o.DuePowerEvents(ctx, time.Now().Add(time.Second), 10)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int64{a1.ID, b1.ID}, ids(due)); diff != "" {
		t.Fatalf("due events (-want +got):\n%s", diff)
	}
	if due[0].NodeUUID != a.UUID || due[0].InstanceUUID != inst1 || due[0].PowerState != node.PowerOff || due[0].Status != node.EventPending {
		t.Errorf("due[0] = %+v", due[0])
	}

	// A newer event for the same node and instance supersedes the pending one.
	a2 := powerChange(t, s, a, inst1, node.PowerOn)
	due, err = o.DuePowerEvents(ctx, time.Now().Add(time.Second), 10)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int64{b1.ID, a2.ID}, ids(due)); diff != "" {
		t.Fatalf("due after supersede (-want +got):\n%s", diff)
	}
	old, err := o.ListPowerEvents(ctx, node.PowerEventQuery{Status: node.EventSuperseded})
	if err != nil || len(old) != 1 || old[0].ID != a1.ID || old[0].FinishedAt.IsZero() {
		t.Fatalf("superseded = %+v, %v; want only %d with finished_at", old, err, a1.ID)
	}

	// Another instance's event does not supersede, and waits behind the node's older one.
	a3 := powerChange(t, s, a, inst2, node.PowerOff)
	due, err = o.DuePowerEvents(ctx, time.Now().Add(time.Second), 10)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int64{b1.ID, a2.ID}, ids(due)); diff != "" {
		t.Fatalf("head of line (-want +got):\n%s", diff)
	}
	// Limit, and events not yet due.
	if due, err := o.DuePowerEvents(ctx, time.Now().Add(time.Second), 1); err != nil || len(due) != 1 || due[0].ID != b1.ID {
		t.Fatalf("limit 1 = %v, %v", ids(due), err)
	}
	if due, err := o.DuePowerEvents(ctx, time.Now().Add(-time.Hour), 10); err != nil || len(due) != 0 {
		t.Fatalf("due an hour ago = %v, %v; want none", ids(due), err)
	}
	// A retry later keeps the node's order: a2 not due → a3 not returned either.
	a2.Attempts, a2.NextAttempt, a2.LastError, a2.Code = 1, time.Now().Add(time.Hour), "connection refused", 0
	if err := o.UpdatePowerEvents(ctx, []*node.PowerEvent{a2}); err != nil {
		t.Fatal(err)
	}
	due, err = o.DuePowerEvents(ctx, time.Now().Add(time.Second), 10)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int64{b1.ID}, ids(due)); diff != "" {
		t.Fatalf("due while a2 backs off (-want +got):\n%s", diff)
	}
	// a2 delivered → a3 is next for node a.
	a2.Status, a2.Code, a2.LastError = node.EventDelivered, 200, ""
	if err := o.UpdatePowerEvents(ctx, []*node.PowerEvent{a2}); err != nil {
		t.Fatal(err)
	}
	due, err = o.DuePowerEvents(ctx, time.Now().Add(time.Second), 10)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int64{b1.ID, a3.ID}, ids(due)); diff != "" {
		t.Fatalf("due after delivery (-want +got):\n%s", diff)
	}
	// Events outlive their node.
	if err := s.DeleteNode(ctx, b.UUID, "c1"); err != nil {
		t.Fatal(err)
	}
	due, err = o.DuePowerEvents(ctx, time.Now().Add(time.Second), 10)
	if err != nil || len(due) != 2 {
		t.Fatalf("due after deleting node b = %v, %v; want 2", ids(due), err)
	}
}

func testPowerEventOutcomes(t *testing.T, s conductor.Store) {
	ctx := context.Background()
	o := asOutbox(t, s)
	n := reserve(t, s, createNode(t, s, "a").UUID, "c1")
	m := reserve(t, s, createNode(t, s, "b").UUID, "c1")
	const inst = "11111111-1111-4111-8111-111111111111"
	e1 := powerChange(t, s, n, inst, node.PowerOff)
	e2 := powerChange(t, s, m, inst, node.PowerOn)

	// A retry written after the event was superseded does not resurrect it.
	e3 := powerChange(t, s, n, inst, node.PowerOn) // supersedes e1
	e1.Attempts, e1.NextAttempt, e1.LastError = 2, time.Now(), "HTTP 503"
	e2.Status, e2.Code, e2.Attempts, e2.LastError = node.EventFailed, 404, 1, "instance not found"
	if err := o.UpdatePowerEvents(ctx, []*node.PowerEvent{e1, e2}); err != nil {
		t.Fatal(err)
	}
	st, err := o.PowerEventStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Pending != 1 || st.Failed != 1 || st.Superseded != 1 || st.Delivered != 0 || st.OldestPending.IsZero() {
		t.Fatalf("stats = %+v; want 1 pending, 1 failed, 1 superseded", st)
	}
	failed, err := o.ListPowerEvents(ctx, node.PowerEventQuery{Status: node.EventFailed})
	if err != nil || len(failed) != 1 {
		t.Fatalf("failed = %v, %v", failed, err)
	}
	f := failed[0]
	if f.ID != e2.ID || f.Code != 404 || f.Attempts != 1 || f.LastError != "instance not found" || f.FinishedAt.IsZero() {
		t.Errorf("failed event = %+v", f)
	}
	byNode, err := o.ListPowerEvents(ctx, node.PowerEventQuery{NodeUUID: n.UUID})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int64{e3.ID, e1.ID}, ids(byNode)); diff != "" {
		t.Errorf("list by node, newest first (-want +got):\n%s", diff)
	}
	if l, err := o.ListPowerEvents(ctx, node.PowerEventQuery{Limit: 1}); err != nil || len(l) != 1 || l[0].ID != e3.ID {
		t.Errorf("list limit 1 = %v, %v", ids(l), err)
	}

	// Prune drops final events finished before the cut, never pending ones.
	if n, err := o.PrunePowerEvents(ctx, time.Now().Add(-time.Hour)); err != nil || n != 0 {
		t.Fatalf("prune an hour ago = %d, %v; want 0", n, err)
	}
	if n, err := o.PrunePowerEvents(ctx, time.Now().Add(time.Second)); err != nil || n != 2 {
		t.Fatalf("prune now = %d, %v; want 2", n, err)
	}
	st, err = o.PowerEventStats(ctx)
	if err != nil || st.Pending != 1 || st.Failed+st.Superseded+st.Delivered != 0 {
		t.Fatalf("stats after prune = %+v, %v", st, err)
	}
}

func testPowerEventNeedsLock(t *testing.T, s conductor.Store) {
	ctx := context.Background()
	o := asOutbox(t, s)
	n := createNode(t, s, "a")
	n.PowerState = node.PowerOn
	ev := &node.PowerEvent{NodeUUID: n.UUID, InstanceUUID: "11111111-1111-4111-8111-111111111111", PowerState: node.PowerOn}
	err := s.SaveNodeWithEvent(ctx, n, "c1", ev)
	if !errors.Is(err, node.ErrLockLost) {
		t.Fatalf("SaveNodeWithEvent without the reservation = %v; want ErrLockLost", err)
	}
	// Nothing was written: neither the node nor the event.
	st, err := o.PowerEventStats(ctx)
	if err != nil || st != (node.PowerEventStats{}) {
		t.Fatalf("stats = %+v, %v; want empty", st, err)
	}
	got, err := s.GetNode(ctx, n.UUID)
	if err != nil || got.PowerState != "" {
		t.Fatalf("node power state = %q, %v; want unchanged", got.PowerState, err)
	}
}
