package conductor_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ferrumhq/ferrum/controller/conductor"
	"github.com/ferrumhq/ferrum/controller/node"
)

// outboxRows lists the stored power events of node uuid, oldest first, as "state status".
func (e *syncEnv) outboxRows(t *testing.T, uuid string) []string {
	t.Helper()
	evs, err := e.store.ListPowerEvents(context.Background(), node.PowerEventQuery{NodeUUID: uuid})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := len(evs) - 1; i >= 0; i-- {
		out = append(out, evs[i].InstanceUUID[:4]+" "+evs[i].PowerState+" "+evs[i].Status)
	}
	return out
}

func (e *syncEnv) power(t *testing.T, ident, target string) {
	t.Helper()
	if err := e.c.SetPowerState(context.Background(), ident, target, 0); err != nil {
		t.Fatalf("SetPowerState %s: %v", target, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for e.node(t, ident).TargetPowerState != "" || e.node(t, ident).Reservation != "" {
		if time.Now().After(deadline) {
			t.Fatalf("power %s did not finish", target)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestPowerEventsOutbox: with PowerEvents on, every power change of a node with an instance
// is written to the outbox with the node (a reboot as power on); nodes without an instance
// and conductors without PowerEvents write none.
func TestPowerEventsOutbox(t *testing.T) {
	const inst = "aaaa1111-1111-4111-8111-111111111111"
	e := newSyncEnv(t, func(c *conductor.Config) {
		c.PowerEvents = true
		c.PowerSyncAcceptHardwareState = true
	})
	n := e.manageable(t, "n", node.PowerOn)
	bare := e.manageable(t, "bare", node.PowerOn)
	e.edit(t, "n", func(n *node.Node) { n.InstanceUUID = inst })

	e.power(t, "n", node.PowerOff)
	e.power(t, "bare", node.PowerOff)
	e.power(t, "n", node.Rebooting)
	e.hw.set(n.UUID, node.PowerOff) // the OS shut down: the sync records it
	if st := e.pass(t); st.Recorded != 1 {
		t.Fatalf("pass = %+v, want 1 recorded", st)
	}
	want := []string{"aaaa power off superseded", "aaaa power on superseded", "aaaa power off pending"}
	if diff := cmp.Diff(want, e.outboxRows(t, n.UUID)); diff != "" {
		t.Errorf("outbox of n (-want +got):\n%s", diff)
	}
	if got := e.outboxRows(t, bare.UUID); len(got) != 0 {
		t.Errorf("a node without an instance has events %v", got)
	}
	if diff := cmp.Diff([]string{"n power off", "bare power off", "n power on", "n power off"}, e.notes.take()); diff != "" {
		t.Errorf("notifications (-want +got):\n%s", diff)
	}

	off := newSyncEnv(t, nil)
	m := off.manageable(t, "m", node.PowerOn)
	off.edit(t, "m", func(n *node.Node) { n.InstanceUUID = inst })
	off.power(t, "m", node.PowerOff)
	if got := off.outboxRows(t, m.UUID); len(got) != 0 {
		t.Errorf("PowerEvents off wrote %v", got)
	}
}
