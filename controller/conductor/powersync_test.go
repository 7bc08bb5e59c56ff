package conductor_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ferrumhq/ferrum/controller/conductor"
	"github.com/ferrumhq/ferrum/controller/node"
)

// syncHW is a hardware type whose machines have a power state of their own that tests change
// behind the conductor's back, and whose reads or power actions can be made to fail.
type syncHW struct {
	mu       sync.Mutex
	state    map[string]string // node UUID → actual power state
	delay    map[string]time.Duration
	readDone map[string]time.Time
	readErr  map[string]error
	setErr   map[string]error
	setCalls []string // "uuid target"
}

const syncHWName = "sync-hw"

func newSyncHW() *syncHW {
	return &syncHW{state: map[string]string{}, readErr: map[string]error{}, setErr: map[string]error{},
		delay: map[string]time.Duration{}, readDone: map[string]time.Time{}}
}

func (h *syncHW) Name() string { return syncHWName }

func (h *syncHW) Supported() map[string][]string {
	out := map[string][]string{}
	for _, t := range node.InterfaceTypes {
		out[t] = []string{"fake"}
	}
	return out
}

func (h *syncHW) Driver(n *node.Node) (*conductor.Driver, error) {
	return &conductor.Driver{Power: syncPower{h}}, nil
}

func (h *syncHW) set(uuid, state string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.state[uuid] = state
}

func (h *syncHW) get(uuid string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.state[uuid]
}

func (h *syncHW) failReads(uuid string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.readErr[uuid] = err
}

func (h *syncHW) failSets(uuid string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.setErr[uuid] = err
}

func (h *syncHW) calls() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.setCalls...)
}

type syncPower struct{ h *syncHW }

func (p syncPower) Validate(ctx context.Context, n *node.Node) error {
	if n.DriverInfo["invalid"] != nil {
		return errors.New("driver_info invalid")
	}
	return nil
}

func (p syncPower) PowerState(ctx context.Context, n *node.Node) (string, error) {
	p.h.mu.Lock()
	d := p.h.delay[n.UUID]
	p.h.mu.Unlock()
	time.Sleep(d)
	p.h.mu.Lock()
	defer p.h.mu.Unlock()
	p.h.readDone[n.UUID] = time.Now()
	if err := p.h.readErr[n.UUID]; err != nil {
		return "", err
	}
	if s, ok := p.h.state[n.UUID]; ok {
		return s, nil
	}
	return node.PowerOff, nil
}

func (p syncPower) SetPowerState(ctx context.Context, n *node.Node, target string, _ time.Duration) error {
	p.h.mu.Lock()
	defer p.h.mu.Unlock()
	p.h.setCalls = append(p.h.setCalls, n.UUID+" "+target)
	if err := p.h.setErr[n.UUID]; err != nil {
		return err
	}
	switch target {
	case node.PowerOff, node.SoftPowerOff:
		p.h.state[n.UUID] = node.PowerOff
	default:
		p.h.state[n.UUID] = node.PowerOn
	}
	return nil
}

// notes records what the conductor publishes.
type notes struct {
	mu  sync.Mutex
	got []string
}

func (r *notes) PowerChanged(_ context.Context, n *node.Node, state string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, n.Name+" "+state)
}

func (r *notes) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.got
	r.got = nil
	return out
}

type syncEnv struct {
	*env
	hw    *syncHW
	notes *notes
}

// newSyncEnv is a conductor with the sync hardware type and the periodic sync off: tests
// run passes themselves.
func newSyncEnv(t *testing.T, mod func(*conductor.Config)) *syncEnv {
	t.Helper()
	hw, nt := newSyncHW(), &notes{}
	e := newEnv(t, func(c *conductor.Config) {
		c.HardwareTypes = append(c.HardwareTypes, hw)
		c.Notifier = nt
		c.PowerSyncInterval = -1
		c.PowerFailureRecoveryInterval = -1
		if mod != nil {
			mod(c)
		}
	})
	return &syncEnv{env: e, hw: hw, notes: nt}
}

// manageable creates a node powered as given and brings it to manageable (which records
// its power state).
func (e *syncEnv) manageable(t *testing.T, name, power string) *node.Node {
	t.Helper()
	n := e.create(t, &node.Node{Name: name, Driver: syncHWName})
	e.hw.set(n.UUID, power)
	e.provision(t, name, conductor.ProvisionRequest{Target: "manage"})
	got := e.wait(t, name, node.Manageable)
	if got.PowerState != power {
		t.Fatalf("%s after manage: power_state %q, want %q", name, got.PowerState, power)
	}
	e.notes.take()
	return got
}

func (e *syncEnv) pass(t *testing.T) conductor.PowerSyncStats {
	t.Helper()
	st, err := e.c.SyncPowerStates(context.Background())
	if err != nil {
		t.Fatalf("SyncPowerStates: %v", err)
	}
	return st
}

func (e *syncEnv) node(t *testing.T, ident string) *node.Node {
	t.Helper()
	n, err := e.c.GetNode(context.Background(), ident)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// edit changes a stored node directly, as another process would.
func (e *syncEnv) edit(t *testing.T, ident string, f func(*node.Node)) {
	t.Helper()
	ctx := context.Background()
	n, err := e.store.ReserveNode(ctx, ident, "editor", time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	n.Normalize()
	f(n)
	if err := e.store.SaveNode(ctx, n, "editor"); err != nil {
		t.Fatal(err)
	}
	if err := e.store.ReleaseNode(ctx, n.UUID, "editor"); err != nil {
		t.Fatal(err)
	}
}

func TestPowerSyncMismatch(t *testing.T) {
	tests := []struct {
		name        string
		accept      bool
		recorded    string
		actual      string
		wantStored  string
		wantActual  string
		wantNotes   []string
		wantForced  int
		wantRecords int
	}{
		{"force/on-was-turned-off", false, node.PowerOn, node.PowerOff, node.PowerOn, node.PowerOn, []string{"n power on"}, 1, 0},
		{"force/off-was-turned-on", false, node.PowerOff, node.PowerOn, node.PowerOff, node.PowerOff, []string{"n power off"}, 1, 0},
		{"accept/on-was-turned-off", true, node.PowerOn, node.PowerOff, node.PowerOff, node.PowerOff, []string{"n power off"}, 0, 1},
		{"accept/off-was-turned-on", true, node.PowerOff, node.PowerOn, node.PowerOn, node.PowerOn, []string{"n power on"}, 0, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newSyncEnv(t, func(c *conductor.Config) { c.PowerSyncAcceptHardwareState = tc.accept })
			n := e.manageable(t, "n", tc.recorded)
			e.hw.set(n.UUID, tc.actual) // behind the conductor's back
			st := e.pass(t)
			if st.Nodes != 1 || st.Forced != tc.wantForced || st.Recorded != tc.wantRecords {
				t.Errorf("pass = %+v, want 1 node, %d forced, %d recorded", st, tc.wantForced, tc.wantRecords)
			}
			got := e.node(t, "n")
			if got.PowerState != tc.wantStored || e.hw.get(n.UUID) != tc.wantActual || got.TargetPowerState != "" {
				t.Errorf("after sync: stored %q (target %q), hardware %q; want %q, %q", got.PowerState, got.TargetPowerState, e.hw.get(n.UUID), tc.wantStored, tc.wantActual)
			}
			if diff := cmp.Diff(tc.wantNotes, e.notes.take()); diff != "" {
				t.Errorf("notifications (-want +got):\n%s", diff)
			}
			// Next pass: everything matches, nothing happens.
			if st := e.pass(t); st.Matched != 1 || st.Forced+st.Recorded != 0 {
				t.Errorf("second pass = %+v, want a match", st)
			}
			if got := e.notes.take(); len(got) != 0 {
				t.Errorf("second pass notified %v", got)
			}
		})
	}
}

func TestPowerSyncRecordsUnknownState(t *testing.T) {
	e := newSyncEnv(t, nil)
	n := e.manageable(t, "n", node.PowerOn)
	e.edit(t, "n", func(n *node.Node) { n.PowerState = "" })
	if st := e.pass(t); st.Recorded != 1 {
		t.Fatalf("pass = %+v, want 1 recorded", st)
	}
	if got := e.node(t, "n"); got.PowerState != node.PowerOn {
		t.Errorf("power_state = %q, want %q", got.PowerState, node.PowerOn)
	}
	if diff := cmp.Diff([]string{"n power on"}, e.notes.take()); diff != "" {
		t.Errorf("notifications (-want +got):\n%s", diff)
	}
	if calls := e.hw.calls(); len(calls) != 0 {
		t.Errorf("recording an unknown state drove the hardware: %v", calls)
	}

	// Unknown state and driver_info that does not validate: left alone (Ironic skips it).
	e.edit(t, n.UUID, func(n *node.Node) { n.PowerState = ""; n.DriverInfo["invalid"] = true })
	if st := e.pass(t); st.Recorded != 0 || st.Skipped != 1 {
		t.Errorf("pass over an invalid node = %+v, want it skipped", st)
	}
}

func TestPowerSyncReadFailuresThenMaintenanceThenRecovery(t *testing.T) {
	e := newSyncEnv(t, nil)
	n := e.manageable(t, "n", node.PowerOn)
	healthy := e.manageable(t, "h", node.PowerOff)
	e.hw.failReads(n.UUID, errors.New("BMC 10.0.0.1:623 power status: no answer from the BMC"))
	for attempt := 1; attempt <= 3; attempt++ {
		st := e.pass(t)
		if st.Failed != 1 || st.Matched != 1 || (attempt > 1 && st.SlowLane != 1) {
			t.Fatalf("pass %d = %+v, want 1 failed (in the slow lane after the first) and 1 matched", attempt, st)
		}
		got := e.node(t, "n")
		want := "During sync_power_state, could not get power state for node " + n.UUID +
			". Error: BMC 10.0.0.1:623 power status: no answer from the BMC."
		if got.LastError != want || got.Maintenance {
			t.Fatalf("pass %d: last_error %q maintenance %v; want %q", attempt, got.LastError, got.Maintenance, want)
		}
	}
	if st := e.pass(t); st.Maintenance != 1 {
		t.Fatalf("4th failing pass = %+v, want the node put into maintenance", st)
	}
	got := e.node(t, "n")
	if !got.Maintenance || got.Fault != node.FaultPowerFailure || got.PowerState != "" ||
		!strings.Contains(got.MaintenanceReason, "max retries exceeded") || !strings.Contains(got.MaintenanceReason, "no answer from the BMC") {
		t.Fatalf("after max retries: maintenance %v fault %q power %q reason %q", got.Maintenance, got.Fault, got.PowerState, got.MaintenanceReason)
	}
	if st := e.pass(t); st.Nodes != 1 {
		t.Errorf("pass after maintenance = %+v, want only the healthy node", st)
	}
	if h := e.node(t, healthy.UUID); h.LastError != "" || h.Maintenance {
		t.Errorf("healthy node touched: %+v", h)
	}

	// Still failing: recovery leaves it in maintenance.
	e.c.RecoverPowerFailures(context.Background())
	if got := e.node(t, "n"); !got.Maintenance {
		t.Fatal("recovery took a node whose BMC still fails out of maintenance")
	}
	// The BMC answers again (the machine was switched off meanwhile).
	e.hw.failReads(n.UUID, nil)
	e.hw.set(n.UUID, node.PowerOff)
	e.notes.take()
	e.c.RecoverPowerFailures(context.Background())
	got = e.node(t, "n")
	if got.Maintenance || got.Fault != "" || got.MaintenanceReason != "" || got.PowerState != node.PowerOff {
		t.Fatalf("after recovery: maintenance %v fault %q reason %q power %q", got.Maintenance, got.Fault, got.MaintenanceReason, got.PowerState)
	}
	if diff := cmp.Diff([]string{"n power off"}, e.notes.take()); diff != "" {
		t.Errorf("recovery notifications (-want +got):\n%s", diff)
	}
	if st := e.pass(t); st.Nodes != 2 || st.Matched != 2 {
		t.Errorf("pass after recovery = %+v, want both nodes matching", st)
	}
}

func TestPowerSyncLastErrorClearedByGoodRead(t *testing.T) {
	e := newSyncEnv(t, nil)
	n := e.manageable(t, "n", node.PowerOn)
	e.hw.failReads(n.UUID, errors.New("timeout"))
	e.pass(t)
	if got := e.node(t, "n"); !strings.HasPrefix(got.LastError, "During sync_power_state") {
		t.Fatalf("last_error %q", got.LastError)
	}
	e.hw.failReads(n.UUID, nil)
	e.pass(t)
	if got := e.node(t, "n"); got.LastError != "" {
		t.Errorf("last_error after a good read = %q, want cleared", got.LastError)
	}
	if st := e.pass(t); st.SlowLane != 0 {
		t.Errorf("a recovered node stays in the slow lane: %+v", st)
	}
}

func TestPowerSyncForceFailsUntilMaintenance(t *testing.T) {
	e := newSyncEnv(t, nil)
	n := e.manageable(t, "n", node.PowerOn)
	e.hw.set(n.UUID, node.PowerOff)
	e.hw.failSets(n.UUID, errors.New("chassis control refused"))
	for i := 1; i <= 3; i++ {
		if st := e.pass(t); st.Forced != 1 {
			t.Fatalf("pass %d = %+v, want a forced power on", i, st)
		}
		if got := e.node(t, "n"); got.PowerState != node.PowerOn || !strings.Contains(got.LastError, "chassis control refused") {
			t.Fatalf("pass %d: power %q last_error %q", i, got.PowerState, got.LastError)
		}
	}
	if st := e.pass(t); st.Maintenance != 1 {
		t.Fatalf("4th mismatch = %+v, want maintenance", st)
	}
	got := e.node(t, "n")
	if !got.Maintenance || got.Fault != node.FaultPowerFailure || got.PowerState != node.PowerOff {
		t.Errorf("after max retries: maintenance %v fault %q power %q (want the actual state recorded)", got.Maintenance, got.Fault, got.PowerState)
	}
	if diff := cmp.Diff([]string{"n power off"}, e.notes.take()); diff != "" {
		t.Errorf("notifications (-want +got):\n%s", diff)
	}
}

func TestPowerSyncSkips(t *testing.T) {
	e := newSyncEnv(t, nil)
	cases := map[string]func(*node.Node){
		"maintenance":   func(n *node.Node) { n.Maintenance = true },
		"target-set":    func(n *node.Node) { n.TargetPowerState = node.PowerOn },
		"clean-wait":    func(n *node.Node) { n.ProvisionState = node.CleanWait },
		"deploy-wait":   func(n *node.Node) { n.ProvisionState = node.DeployWait },
		"adopt-failed":  func(n *node.Node) { n.ProvisionState = node.AdoptFail },
		"other-group":   func(n *node.Node) { n.ConductorGroup = "rack-9" },
		"other-driver":  func(n *node.Node) { n.Driver = "redfish" },
		"enroll":        func(n *node.Node) { n.ProvisionState = node.Enroll },
		"control-power": nil,
	}
	for name, f := range cases {
		n := e.manageable(t, name, node.PowerOn)
		e.hw.set(n.UUID, node.PowerOff) // every one of them mismatches
		if f != nil {
			e.edit(t, name, f)
		}
	}
	// One more, locked by another conductor.
	locked := e.manageable(t, "locked", node.PowerOn)
	e.hw.set(locked.UUID, node.PowerOff)
	if _, err := e.store.ReserveNode(context.Background(), "locked", "other-host", time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	st := e.pass(t)
	if st.Nodes != 1 || st.Forced != 1 {
		t.Fatalf("pass = %+v, want only control-power synced", st)
	}
	if diff := cmp.Diff([]string{"control-power power on"}, e.notes.take()); diff != "" {
		t.Errorf("notifications (-want +got):\n%s", diff)
	}
}

func TestPowerSyncPeriodic(t *testing.T) {
	e := newSyncEnv(t, func(c *conductor.Config) { c.PowerSyncInterval = 100 * time.Millisecond })
	var nodes []*node.Node
	for _, name := range []string{"a", "b", "c", "d"} {
		nodes = append(nodes, e.manageable(t, name, node.PowerOn))
	}
	for _, n := range nodes {
		e.hw.set(n.UUID, node.PowerOff) // someone switched them off
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, n := range nodes {
		for e.hw.get(n.UUID) != node.PowerOn {
			if time.Now().After(deadline) {
				t.Fatalf("the periodic sync never powered %s back on", n.Name)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// A read that hangs does not hold its worker: with one worker, the node after it is read
// long before the hanging read returns, and the pass still waits for both.
func TestPowerSyncSlowReadDoesNotHoldTheLane(t *testing.T) {
	e := newSyncEnv(t, func(c *conductor.Config) {
		c.PowerSyncWorkers = 1
		c.PowerSyncDetachAfter = 20 * time.Millisecond
	})
	slow := e.manageable(t, "a-slow", node.PowerOn)
	fast := e.manageable(t, "b-fast", node.PowerOn)
	e.hw.mu.Lock()
	e.hw.delay[slow.UUID] = 500 * time.Millisecond
	e.hw.mu.Unlock()
	start := time.Now()
	st := e.pass(t)
	if st.Matched != 2 || time.Since(start) < 500*time.Millisecond {
		t.Fatalf("pass = %+v after %v, want both matched after the slow read", st, time.Since(start))
	}
	e.hw.mu.Lock()
	defer e.hw.mu.Unlock()
	if got := e.hw.readDone[fast.UUID].Sub(start); got > 300*time.Millisecond {
		t.Errorf("the fast node was read %v after the pass started: the slow read held the only worker", got)
	}
}

// The periodic pass spreads its reads over half the interval: N reads over S start one slot
// (S/N) apart, each jittered within its slot.
func TestPowerSyncSpread(t *testing.T) {
	e := newSyncEnv(t, nil)
	var nodes []*node.Node
	for _, name := range []string{"a", "b", "c", "d"} {
		nodes = append(nodes, e.manageable(t, name, node.PowerOff))
	}
	start := time.Now()
	st, err := e.c.SyncPowerStatesSpread(context.Background(), 400*time.Millisecond)
	if err != nil || st.Matched != 4 {
		t.Fatalf("pass = %+v, %v", st, err)
	}
	e.hw.mu.Lock()
	defer e.hw.mu.Unlock()
	for i, n := range nodes {
		at := e.hw.readDone[n.UUID].Sub(start)
		lo, hi := time.Duration(i)*100*time.Millisecond, time.Duration(i+1)*100*time.Millisecond+250*time.Millisecond
		if at < lo || at > hi {
			t.Errorf("node %d read %v after the start, want within its slot [%v, %v]", i, at, lo, hi)
		}
	}
}
