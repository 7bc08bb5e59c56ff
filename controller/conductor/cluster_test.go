package conductor_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrumhq/ferrum/controller/conductor"
	"github.com/ferrumhq/ferrum/controller/hardware/fake"
	"github.com/ferrumhq/ferrum/controller/node"
)

// clusterTiming makes conductors heartbeat every 100ms and die after 3s of silence (less
// flakes under -race on a loaded machine, where SQLite commits can queue for a second).
func clusterTiming(host string) func(*conductor.Config) {
	return func(c *conductor.Config) {
		c.Hostname = host
		c.HeartbeatInterval = 100 * time.Millisecond
		c.HeartbeatTimeout = 3 * time.Second
		c.PowerSyncInterval = -1
		c.PowerFailureRecoveryInterval = -1
	}
}

// owners maps each node to its conductor as every given conductor sees it, failing when two
// conductors disagree.
func owners(t *testing.T, uuids []string, envs ...*env) (map[string]string, bool) {
	t.Helper()
	out := map[string]string{}
	for _, id := range uuids {
		for i, e := range envs {
			n, err := e.c.GetNode(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			o := e.c.NodeConductor(n)
			if i > 0 && out[id] != o {
				return out, false
			}
			out[id] = o
		}
	}
	return out, true
}

// waitOwners polls until every conductor agrees and every owner is in want, then returns the
// nodes per owner.
func waitOwners(t *testing.T, within time.Duration, uuids []string, want []string, envs ...*env) map[string]int {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got, agree := owners(t, uuids, envs...)
		share := map[string]int{}
		ok := agree
		for _, o := range got {
			share[o]++
			ok = ok && contains(want, o)
		}
		ok = ok && len(share) == len(want)
		if ok {
			return share
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: owners %v (agree %v), want every node owned by one of %v, each owning some", within, share, agree, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestClusterTakeOverJoinLeave runs conductors on one database beside a "ghost" conductor
// that registered, reserved nodes mid-deploy and mid-power-change, then stopped heartbeating
// (a kill -9). The live ones take its nodes over (the daemon test in cmd/ferrum-controller
// measures how fast, with real processes): its locks are
// released, the transient nodes failed with a last_error that says why, and every node is
// owned by exactly one live conductor. A conductor joining takes a share; one leaving gives it
// back.
func TestClusterTakeOverJoinLeave(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ferrum.db")
	a := startEnv(t, path, clusterTiming("ctl-a"))
	ctx := context.Background()
	// The ghost heartbeats until it is "killed".
	ghostBeat := func() {
		if err := a.store.RegisterConductor(ctx, &node.Conductor{Hostname: "ghost", Drivers: []string{fake.Name}}); err != nil {
			t.Error(err)
		}
	}
	ghostBeat()
	kill, killed := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(killed)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-kill:
				return
			case <-tick.C:
				ghostBeat()
			}
		}
	}()
	var uuids []string
	for i := range 60 {
		uuids = append(uuids, a.create(t, &node.Node{Name: fmt.Sprintf("n%02d", i), ProvisionState: node.Available}).UUID)
	}
	// The ghost's work in flight: two deploys and a power change, locked for an hour.
	inFlight := map[string]node.State{uuids[0]: node.DeployFail, uuids[1]: node.DeployFail, uuids[2]: node.Available}
	for id := range inFlight {
		n, err := a.store.ReserveNode(ctx, id, "ghost", time.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if id == uuids[2] {
			n.TargetPowerState = node.PowerOn
		} else {
			n.ProvisionState, n.TargetProvisionState = node.Deploying, node.Active
		}
		if err := a.store.SaveNode(ctx, n, "ghost"); err != nil {
			t.Fatal(err)
		}
	}
	b := startEnv(t, path, clusterTiming("ctl-b"))
	share := waitOwners(t, 10*time.Second, uuids, []string{"ctl-a", "ctl-b", "ghost"}, a, b)
	t.Logf("with the ghost alive: %v", share)

	// The ghost's row goes stale: its nodes become the others'.
	close(kill)
	<-killed
	start := time.Now()
	share = waitOwners(t, 10*time.Second, uuids, []string{"ctl-a", "ctl-b"}, a, b)
	t.Logf("ghost dead after %v: %v", time.Since(start), share)
	for id, want := range inFlight {
		deadline := time.Now().Add(10 * time.Second)
		for {
			n, err := a.c.GetNode(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if n.Reservation == "" && n.ProvisionState == want && n.TargetPowerState == "" {
				msg := "can't be resumed by conductor ctl-"
				if want == node.Available {
					msg = "Pending power operation was aborted due to conductor take over"
				}
				if !strings.Contains(n.LastError, msg) {
					t.Errorf("node %s last_error %q, want it to contain %q", id, n.LastError, msg)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %s after take-over: state %q target power %q reservation %q, want %q unlocked",
					id, n.ProvisionState, n.TargetPowerState, n.Reservation, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	conds, err := a.c.ListConductors(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, cd := range conds {
		if cd.Online != (cd.Hostname != "ghost") {
			t.Errorf("conductor %s alive = %v", cd.Hostname, cd.Online)
		}
	}

	// A conductor joining takes its share; when it leaves, the others take it back.
	c := startEnv(t, path, clusterTiming("ctl-c"))
	share = waitOwners(t, 10*time.Second, uuids, []string{"ctl-a", "ctl-b", "ctl-c"}, a, b, c)
	t.Logf("after ctl-c joined: %v", share)
	// Power sync reads only the nodes each conductor owns: each node once per round.
	synced := 0
	for _, e := range []*env{a, b, c} {
		st, err := e.c.SyncPowerStates(ctx)
		if err != nil {
			t.Fatal(err)
		}
		host := e.c.Hostname()
		if want := share[host]; st.Nodes != want {
			t.Errorf("%s power sync read %d nodes, want the %d it owns", host, st.Nodes, want)
		}
		synced += st.Nodes
	}
	if want := len(uuids); synced != want {
		t.Errorf("power sync read %d nodes in all, want %d", synced, want)
	}
	if err := c.c.Close(); err != nil {
		t.Fatal(err)
	}
	waitOwners(t, 10*time.Second, uuids, []string{"ctl-a", "ctl-b"}, a, b)
}

// failingBeats fails RegisterConductor once failing is set: a conductor cut off from the
// database's heartbeat table.
type failingBeats struct {
	conductor.Store
	failing atomic.Bool
}

func (f *failingBeats) RegisterConductor(ctx context.Context, c *node.Conductor) error {
	if f.failing.Load() {
		return errors.New("heartbeat lost")
	}
	return f.Store.RegisterConductor(ctx, c)
}

// TestClusterSelfFencing: a conductor whose heartbeats fail for HeartbeatTimeout stops owning
// nodes, at about the time the others take them over, so their periodic work never runs twice
// for long.
func TestClusterSelfFencing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ferrum.db")
	a := startEnv(t, path, clusterTiming("ctl-a"))
	beats := &failingBeats{}
	f := startEnv(t, path, func(c *conductor.Config) {
		clusterTiming("ctl-f")(c)
		beats.Store = c.Store
		c.Store = beats
	})
	var uuids []string
	for i := range 30 {
		uuids = append(uuids, a.create(t, &node.Node{Name: fmt.Sprintf("f%02d", i)}).UUID)
	}
	waitOwners(t, 10*time.Second, uuids, []string{"ctl-a", "ctl-f"}, a, f)
	beats.failing.Store(true)
	waitOwners(t, 10*time.Second, uuids, []string{"ctl-a"}, a)
	deadline := time.Now().Add(10 * time.Second)
	for {
		owned := 0
		for _, id := range uuids {
			n, err := f.c.GetNode(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			if f.c.NodeConductor(n) == "ctl-f" {
				owned++
			}
		}
		if owned == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ctl-f still owns %d nodes after its heartbeats failed for 10s", owned)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
