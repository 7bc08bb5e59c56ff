package conductor_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ferrumhq/ferrum/controller/conductor"
	"github.com/ferrumhq/ferrum/controller/hardware/fake"
	"github.com/ferrumhq/ferrum/controller/node"
	"github.com/ferrumhq/ferrum/controller/store/sqlite"
)

var _ conductor.HardwareType = (*fake.Hardware)(nil)

type env struct {
	c     *conductor.Conductor
	store *sqlite.Store
	path  string
}

// newEnv runs a conductor over a real SQLite file with fake hardware.
func newEnv(t *testing.T, mod func(*conductor.Config)) *env {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ferrum.db")
	return startEnv(t, path, mod)
}

func startEnv(t *testing.T, path string, mod func(*conductor.Config)) *env {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Config{Path: path})
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	hw, err := fake.New(fake.Config{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := conductor.Config{Store: st, Hostname: "test-host", HardwareTypes: []conductor.HardwareType{hw},
		Log: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel), LockRetryInterval: 20 * time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	c, err := conductor.New(cfg)
	if err != nil {
		t.Fatalf("conductor.New: %v", err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		c.Close()
		st.Close()
	})
	return &env{c: c, store: st, path: path}
}

func (e *env) create(t *testing.T, n *node.Node) *node.Node {
	t.Helper()
	if n.Driver == "" {
		n.Driver = fake.Name
	}
	out, err := e.c.CreateNode(context.Background(), n)
	if err != nil {
		t.Fatalf("CreateNode: %v", err)
	}
	return out
}

// wait polls until the node is in state want with no reservation, or fails the test.
func (e *env) wait(t *testing.T, ident string, want node.State) *node.Node {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := e.c.GetNode(context.Background(), ident)
		if err != nil {
			t.Fatalf("GetNode: %v", err)
		}
		if n.ProvisionState == want && n.Reservation == "" {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s: state %q (target %q, reservation %q, last_error %q), want %q",
				ident, n.ProvisionState, n.TargetProvisionState, n.Reservation, n.LastError, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (e *env) provision(t *testing.T, ident string, req conductor.ProvisionRequest) {
	t.Helper()
	if err := e.c.SetProvisionState(context.Background(), ident, req); err != nil {
		t.Fatalf("SetProvisionState(%s, %q): %v", ident, req.Target, err)
	}
}

// toAvailable drives a fresh node enroll → manageable → available.
func (e *env) toAvailable(t *testing.T, ident string) {
	t.Helper()
	e.provision(t, ident, conductor.ProvisionRequest{Target: "manage"})
	e.wait(t, ident, node.Manageable)
	e.provision(t, ident, conductor.ProvisionRequest{Target: "provide"})
	e.wait(t, ident, node.Available)
}

func TestLifecycle(t *testing.T) {
	e := newEnv(t, nil)
	n := e.create(t, &node.Node{Name: "n1"})
	if n.ProvisionState != node.Enroll || n.Interfaces.Power != "fake" || n.Interfaces.Network != "noop" {
		t.Fatalf("created node: state %q, power %q, network %q", n.ProvisionState, n.Interfaces.Power, n.Interfaces.Network)
	}
	if stored, _ := e.c.GetNode(context.Background(), "n1"); !stored.UpdatedAt.IsZero() || stored.CreatedAt.IsZero() {
		t.Errorf("new node: created_at %v updated_at %v, want set and null", stored.CreatedAt, stored.UpdatedAt)
	}
	e.provision(t, "n1", conductor.ProvisionRequest{Target: "manage"})
	got := e.wait(t, "n1", node.Manageable)
	if got.PowerState != node.PowerOff {
		t.Errorf("after manage: power_state %q, want %q", got.PowerState, node.PowerOff)
	}
	e.provision(t, "n1", conductor.ProvisionRequest{Target: "provide"})
	e.wait(t, "n1", node.Available)

	e.provision(t, "n1", conductor.ProvisionRequest{Target: "active", ConfigDrive: "H4sIAAAA"})
	got = e.wait(t, "n1", node.Active)
	if got.InstanceInfo["configdrive"] != "H4sIAAAA" || got.PowerState != node.PowerOn || got.TargetProvisionState != "" {
		t.Errorf("active node: configdrive %v, power %q, target %q", got.InstanceInfo["configdrive"], got.PowerState, got.TargetProvisionState)
	}

	e.provision(t, "n1", conductor.ProvisionRequest{Target: "rescue", RescuePassword: "pw"})
	e.wait(t, "n1", node.Rescue)
	e.provision(t, "n1", conductor.ProvisionRequest{Target: "unrescue"})
	got = e.wait(t, "n1", node.Active)
	if _, ok := got.InstanceInfo["rescue_password"]; ok {
		t.Errorf("rescue_password kept after unrescue")
	}

	e.provision(t, "n1", conductor.ProvisionRequest{Target: "deleted"})
	got = e.wait(t, "n1", node.Available)
	if len(got.InstanceInfo) != 0 || got.PowerState != node.PowerOff {
		t.Errorf("after undeploy: instance_info %v, power %q", got.InstanceInfo, got.PowerState)
	}
}

func TestManualCleanInspectAdopt(t *testing.T) {
	e := newEnv(t, nil)
	e.create(t, &node.Node{Name: "n1"})
	e.provision(t, "n1", conductor.ProvisionRequest{Target: "manage"})
	e.wait(t, "n1", node.Manageable)

	e.provision(t, "n1", conductor.ProvisionRequest{Target: "clean", CleanSteps: []node.Step{{"interface": "deploy", "step": "erase_devices"}}})
	e.wait(t, "n1", node.Manageable)

	e.provision(t, "n1", conductor.ProvisionRequest{Target: "inspect"})
	got := e.wait(t, "n1", node.Manageable)
	if got.InspectionFinishedAt.IsZero() || got.InspectionStartedAt.IsZero() {
		t.Errorf("inspection timestamps not set: %v %v", got.InspectionStartedAt, got.InspectionFinishedAt)
	}

	e.provision(t, "n1", conductor.ProvisionRequest{Target: "adopt"})
	e.wait(t, "n1", node.Active)
}

func TestInvalidVerbs(t *testing.T) {
	e := newEnv(t, nil)
	e.create(t, &node.Node{Name: "n1"})
	tests := []struct {
		name string
		req  conductor.ProvisionRequest
		kind error
	}{
		{"deploy-from-enroll", conductor.ProvisionRequest{Target: "active"}, node.ErrInvalid},
		{"provide-from-enroll", conductor.ProvisionRequest{Target: "provide"}, node.ErrInvalid},
		{"unknown-verb", conductor.ProvisionRequest{Target: "explode"}, node.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := e.c.SetProvisionState(context.Background(), "n1", tc.req)
			if !errors.Is(err, tc.kind) {
				t.Fatalf("SetProvisionState(%q) = %v, want %v", tc.req.Target, err, tc.kind)
			}
		})
	}
	var ise *node.InvalidStateError
	err := e.c.SetProvisionState(context.Background(), "n1", conductor.ProvisionRequest{Target: "active"})
	if !errors.As(err, &ise) || ise.State != node.Enroll {
		t.Fatalf("deploy from enroll = %v, want *InvalidStateError in enroll", err)
	}
	n, _ := e.c.GetNode(context.Background(), "n1")
	if n.ProvisionState != node.Enroll || n.Reservation != "" {
		t.Fatalf("refused verb changed the node: state %q reservation %q", n.ProvisionState, n.Reservation)
	}
}

func TestFailuresRecordLastError(t *testing.T) {
	e := newEnv(t, nil)
	e.create(t, &node.Node{Name: "n1", DriverInfo: map[string]any{"fake_fail": "deploy"}})
	e.toAvailable(t, "n1")
	e.provision(t, "n1", conductor.ProvisionRequest{Target: "active"})
	got := e.wait(t, "n1", node.DeployFail)
	if got.LastError == "" || got.TargetProvisionState != node.Active {
		t.Fatalf("deploy failed: last_error %q target %q", got.LastError, got.TargetProvisionState)
	}

	e.create(t, &node.Node{Name: "n2", DriverInfo: map[string]any{"fake_fail": "clean"}})
	e.provision(t, "n2", conductor.ProvisionRequest{Target: "manage"})
	e.wait(t, "n2", node.Manageable)
	e.provision(t, "n2", conductor.ProvisionRequest{Target: "provide"})
	got = e.wait(t, "n2", node.CleanFail)
	if !got.Maintenance || got.Fault != node.FaultCleanFailure || got.LastError == "" {
		t.Fatalf("automated clean failure: maintenance %v fault %q last_error %q", got.Maintenance, got.Fault, got.LastError)
	}
}

func TestPowerActions(t *testing.T) {
	e := newEnv(t, nil)
	e.create(t, &node.Node{Name: "n1"})
	for _, tc := range []struct{ target, want string }{
		{node.PowerOn, node.PowerOn}, {node.PowerOff, node.PowerOff}, {node.Rebooting, node.PowerOn},
		{node.SoftPowerOff, node.PowerOff}, {node.SoftRebooting, node.PowerOn},
	} {
		if err := e.c.SetPowerState(context.Background(), "n1", tc.target, 0); err != nil {
			t.Fatalf("SetPowerState(%q): %v", tc.target, err)
		}
		n := e.wait(t, "n1", node.Enroll)
		if n.PowerState != tc.want || n.TargetPowerState != "" {
			t.Fatalf("after %q: power %q target %q, want %q", tc.target, n.PowerState, n.TargetPowerState, tc.want)
		}
	}
	if err := e.c.SetPowerState(context.Background(), "n1", "sideways", 0); !errors.Is(err, node.ErrInvalid) {
		t.Fatalf("bad power target = %v, want ErrInvalid", err)
	}
}

// The state changes only once a worker has started: with the pool full, nothing is written.
func TestNoFreeWorkerLeavesNodeUntouched(t *testing.T) {
	e := newEnv(t, func(c *conductor.Config) { c.Workers = 1 })
	e.create(t, &node.Node{Name: "busy", DriverInfo: map[string]any{"fake_power_delay": "500ms"}})
	e.create(t, &node.Node{Name: "n1"})
	if err := e.c.SetPowerState(context.Background(), "busy", node.PowerOn, 0); err != nil {
		t.Fatal(err)
	}
	before, _ := e.c.GetNode(context.Background(), "n1")
	err := e.c.SetProvisionState(context.Background(), "n1", conductor.ProvisionRequest{Target: "manage"})
	if !errors.Is(err, node.ErrNoWorker) {
		t.Fatalf("SetProvisionState with a full pool = %v, want ErrNoWorker", err)
	}
	after, _ := e.c.GetNode(context.Background(), "n1")
	if after.ProvisionState != before.ProvisionState || after.Reservation != "" || !after.UpdatedAt.Equal(before.UpdatedAt) {
		t.Fatalf("node changed by a refused spawn: %q→%q reservation %q", before.ProvisionState, after.ProvisionState, after.Reservation)
	}
	if s := e.c.Stats(); s.Rejected != 1 {
		t.Errorf("Stats().Rejected = %d, want 1", s.Rejected)
	}
}

func TestLockedNodeConflicts(t *testing.T) {
	e := newEnv(t, nil)
	e.create(t, &node.Node{Name: "n1", DriverInfo: map[string]any{"fake_power_delay": "400ms"}})
	if err := e.c.SetPowerState(context.Background(), "n1", node.PowerOn, 0); err != nil {
		t.Fatal(err)
	}
	n, _ := e.c.GetNode(context.Background(), "n1")
	if n.TargetPowerState != node.PowerOn || n.Reservation != "test-host" {
		t.Fatalf("during power action: target %q reservation %q", n.TargetPowerState, n.Reservation)
	}
	_, err := e.c.UpdateNode(context.Background(), "n1", func(n *node.Node) error { n.Extra["a"] = "b"; return nil })
	var le *node.LockedError
	if !errors.As(err, &le) || le.Holder != "test-host" || !errors.Is(err, node.ErrConflict) {
		t.Fatalf("UpdateNode on a locked node = %v, want *LockedError by test-host", err)
	}
	e.wait(t, "n1", node.Enroll)
}

func TestParallelConflictingProvision(t *testing.T) {
	e := newEnv(t, func(c *conductor.Config) { c.LockRetries = 2 })
	e.create(t, &node.Node{Name: "n1"})
	e.toAvailable(t, "n1")
	if _, err := e.c.UpdateNode(context.Background(), "n1", func(n *node.Node) error {
		n.DriverInfo["fake_deploy_delay"] = "300ms"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 100)
	for i := range errs {
		wg.Go(func() {
			errs[i] = e.c.SetProvisionState(context.Background(), "n1", conductor.ProvisionRequest{Target: "active"})
		})
	}
	wg.Wait()
	accepted := 0
	for _, err := range errs {
		var le *node.LockedError
		var ise *node.InvalidStateError
		switch {
		case err == nil:
			accepted++
		case errors.As(err, &le), errors.As(err, &ise):
		default:
			t.Errorf("unexpected answer: %v", err)
		}
	}
	if accepted != 1 {
		t.Fatalf("%d requests accepted, want exactly 1", accepted)
	}
	e.wait(t, "n1", node.Active)
}

func TestDeleteRules(t *testing.T) {
	e := newEnv(t, nil)
	e.create(t, &node.Node{Name: "n1"})
	e.toAvailable(t, "n1")
	if err := e.c.DeleteNode(context.Background(), "n1"); !errors.Is(err, node.ErrConflict) {
		t.Fatalf("delete available node = %v, want ErrConflict", err)
	}
	if err := e.c.SetMaintenance(context.Background(), "n1", true, "broken"); err != nil {
		t.Fatal(err)
	}
	if err := e.c.DeleteNode(context.Background(), "n1"); err != nil {
		t.Fatalf("delete in maintenance: %v", err)
	}
	if _, err := e.c.GetNode(context.Background(), "n1"); !errors.Is(err, node.ErrNotFound) {
		t.Fatalf("GetNode after delete = %v, want ErrNotFound", err)
	}
	e.create(t, &node.Node{Name: "p", Protected: true})
	if err := e.c.DeleteNode(context.Background(), "p"); !errors.Is(err, node.ErrForbidden) {
		t.Fatalf("delete protected = %v, want ErrForbidden", err)
	}
}

func TestMaintenanceRefusesDeploy(t *testing.T) {
	e := newEnv(t, nil)
	e.create(t, &node.Node{Name: "n1"})
	e.toAvailable(t, "n1")
	if err := e.c.SetMaintenance(context.Background(), "n1", true, "r"); err != nil {
		t.Fatal(err)
	}
	err := e.c.SetProvisionState(context.Background(), "n1", conductor.ProvisionRequest{Target: "active"})
	if !errors.Is(err, node.ErrInvalid) {
		t.Fatalf("deploy in maintenance = %v, want ErrInvalid", err)
	}
	if err := e.c.SetMaintenance(context.Background(), "n1", false, ""); err != nil {
		t.Fatal(err)
	}
	n, _ := e.c.GetNode(context.Background(), "n1")
	if n.Maintenance || n.MaintenanceReason != "" {
		t.Fatalf("maintenance unset: %v %q", n.Maintenance, n.MaintenanceReason)
	}
}

func TestUnknownDriverAndInterface(t *testing.T) {
	e := newEnv(t, nil)
	_, err := e.c.CreateNode(context.Background(), &node.Node{Driver: "no-such-driver"})
	if !errors.Is(err, node.ErrInvalid) {
		t.Fatalf("unknown driver = %v, want ErrInvalid", err)
	}
	n := &node.Node{Driver: fake.Name}
	n.Interfaces.Boot = "bogus"
	_, err = e.c.CreateNode(context.Background(), n)
	if !errors.Is(err, node.ErrInvalid) || err.Error() != "Could not find the following interface in the 'ironic.hardware.interfaces.boot' entrypoint: bogus. Valid interfaces are ['fake', 'ipxe', 'pxe', 'http-ipxe', 'http']." {
		t.Fatalf("unknown boot interface = %v, want Ironic's InterfaceNotFoundInEntrypoint", err)
	}
	n.Interfaces.Boot = ""
	n.ConductorGroup = "elsewhere"
	_, err = e.c.CreateNode(context.Background(), n)
	if !errors.Is(err, node.ErrInvalid) || !strings.Contains(err.Error(), `for conductor group "elsewhere"`) {
		t.Fatalf("unserved conductor group = %v, want No valid host", err)
	}
	n.ConductorGroup = ""
	n.Interfaces.Boot, n.Interfaces.Deploy, n.Interfaces.Raid = "ipxe", "direct", "no-raid"
	got, err := e.c.CreateNode(context.Background(), n)
	if err != nil || got.Interfaces.Boot != "ipxe" || got.Interfaces.Deploy != "direct" || got.Interfaces.Raid != "no-raid" {
		t.Fatalf("Ironic interface names: %v %+v", err, got)
	}
}

// A crashed conductor leaves a node in deploying with its lock: restart fails it and unlocks.
func TestRecoveryAfterCrash(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ferrum.db")
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	mk := func(name string, s node.State, tps string) {
		n := &node.Node{UUID: "", Name: name, Driver: fake.Name, ProvisionState: s, TargetPowerState: tps}
		n.UUID = map[string]string{"dep": "11111111-1111-1111-1111-111111111111", "cw": "22222222-2222-2222-2222-222222222222", "pw": "33333333-3333-3333-3333-333333333333"}[name]
		n.Normalize()
		if err := st.CreateNode(ctx, n); err != nil {
			t.Fatal(err)
		}
		if _, err := st.ReserveNode(ctx, name, "test-host", time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	mk("dep", node.Deploying, "")
	mk("cw", node.CleanWait, "")
	mk("pw", node.Enroll, node.PowerOn)
	st.Close()

	e := startEnv(t, path, nil)
	got := e.wait(t, "dep", node.DeployFail)
	if got.LastError != "The deploying state can't be resumed by conductor test-host. Moving to fail state." {
		t.Errorf("last_error = %q", got.LastError)
	}
	e.wait(t, "cw", node.CleanWait) // wait states survive a restart
	pw := e.wait(t, "pw", node.Enroll)
	if pw.TargetPowerState != "" || pw.LastError == "" {
		t.Errorf("pending power target: %q last_error %q", pw.TargetPowerState, pw.LastError)
	}
}

func TestWaitStateTimeout(t *testing.T) {
	e := newEnv(t, func(c *conductor.Config) {
		c.CheckInterval = 20 * time.Millisecond
		c.DeployCallbackTimeout = 50 * time.Millisecond
	})
	e.create(t, &node.Node{Name: "n1"})
	ctx := context.Background()
	n, err := e.store.ReserveNode(ctx, "n1", "test-host", time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	n.ProvisionState, n.TargetProvisionState, n.ProvisionUpdatedAt = node.DeployWait, node.Active, time.Now().UTC()
	if err := e.store.SaveNode(ctx, n, "test-host"); err != nil {
		t.Fatal(err)
	}
	if err := e.store.ReleaseNode(ctx, n.UUID, "test-host"); err != nil {
		t.Fatal(err)
	}
	got := e.wait(t, "n1", node.DeployFail)
	if got.LastError != "Timeout reached while waiting for callback for node "+n.UUID {
		t.Errorf("last_error = %q", got.LastError)
	}
}

func TestAllocations(t *testing.T) {
	e := newEnv(t, nil)
	e.create(t, &node.Node{Name: "gold", ResourceClass: "baremetal", Traits: []string{"CUSTOM_GOLD"}})
	e.create(t, &node.Node{Name: "plain", ResourceClass: "baremetal"})
	e.toAvailable(t, "gold")
	e.toAvailable(t, "plain")
	a, err := e.c.CreateAllocation(context.Background(), &node.Allocation{ResourceClass: "baremetal", Traits: []string{"CUSTOM_GOLD"}})
	if err != nil {
		t.Fatal(err)
	}
	gold, _ := e.c.GetNode(context.Background(), "gold")
	if a.State != node.AllocationActive || a.NodeUUID != gold.UUID || gold.AllocationUUID != a.UUID || gold.InstanceUUID != a.UUID {
		t.Fatalf("allocation %+v, node allocation %q instance %q", a, gold.AllocationUUID, gold.InstanceUUID)
	}
	b, err := e.c.CreateAllocation(context.Background(), &node.Allocation{ResourceClass: "baremetal", Traits: []string{"CUSTOM_GOLD"}})
	if err != nil || b.State != node.AllocationError || b.LastError == "" {
		t.Fatalf("second gold allocation: %v %+v", err, b)
	}
	if err := e.c.DeleteAllocation(context.Background(), a.UUID); err != nil {
		t.Fatal(err)
	}
	gold, _ = e.c.GetNode(context.Background(), "gold")
	if gold.AllocationUUID != "" || gold.InstanceUUID != "" {
		t.Fatalf("node still allocated after delete: %q %q", gold.AllocationUUID, gold.InstanceUUID)
	}
}

func TestPortsNeedExistingNode(t *testing.T) {
	e := newEnv(t, nil)
	n := e.create(t, &node.Node{Name: "n1"})
	p, err := e.c.CreatePort(context.Background(), &node.Port{NodeUUID: n.UUID, Address: "52:54:00:AA:BB:CC"})
	if err != nil || p.Address != "52:54:00:aa:bb:cc" {
		t.Fatalf("CreatePort: %v %+v", err, p)
	}
	if _, err := e.c.CreatePort(context.Background(), &node.Port{NodeUUID: n.UUID, Address: "52:54:00:aa:bb:cc"}); !errors.Is(err, node.ErrConflict) {
		t.Fatalf("duplicate MAC = %v, want ErrConflict", err)
	}
	if _, err := e.c.CreatePort(context.Background(), &node.Port{NodeUUID: "44444444-4444-4444-4444-444444444444", Address: "52:54:00:aa:bb:cd"}); !errors.Is(err, node.ErrInvalid) {
		t.Fatalf("port of unknown node = %v, want ErrInvalid", err)
	}
}
