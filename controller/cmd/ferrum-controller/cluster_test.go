package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Several controllers on one PostgreSQL database, as separate processes.

var pgSeq atomic.Int64

// pgDatabase creates an empty database for one test on the server in FERRUM_PG_DSN (make test
// starts one with controller/store/postgres/test-setup.sh) and returns its URL; it is dropped
// when the test ends.
func pgDatabase(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv("FERRUM_PG_DSN")
	if dsn == "" {
		t.Skip("set FERRUM_PG_DSN to a PostgreSQL server's URL to run (make test starts one with controller/store/postgres/test-setup.sh)")
	}
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect to FERRUM_PG_DSN: %v", err)
	}
	defer admin.Close(ctx)
	name := fmt.Sprintf("ferrum_ctl_test_%d_%d", os.Getpid(), pgSeq.Add(1))
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), dsn)
		if err != nil {
			t.Errorf("drop database %s: %v", name, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("FERRUM_PG_DSN must be a postgres:// URL: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

const (
	clusterHeartbeat = time.Second
	clusterTimeout   = 4 * time.Second
)

// startController starts one controller of a cluster on database db.
func startController(t *testing.T, db, host string, extra ...string) *daemon {
	t.Helper()
	args := append([]string{"--database", db, "--hostname", host,
		"--heartbeat-interval", clusterHeartbeat.String(), "--heartbeat-timeout", clusterTimeout.String(),
		"--power-sync-interval", "2s"}, extra...)
	d := startDaemon(t, "", args...)
	d.host = host
	return d
}

type ownedNode struct {
	UUID        string  `json:"uuid"`
	Conductor   *string `json:"conductor"`
	Reservation *string `json:"reservation"`
}

// ownership lists every node with its conductor as d sees it.
func (d *daemon) ownership() map[string]string {
	d.t.Helper()
	var out struct {
		Nodes []ownedNode `json:"nodes"`
	}
	if code, _, body := d.call("GET", "/v1/nodes?fields=uuid,conductor&limit=1000", nil, &out); code != 200 {
		d.t.Fatalf("list nodes: %d %s", code, body)
	}
	m := make(map[string]string, len(out.Nodes))
	for _, n := range out.Nodes {
		m[n.UUID] = str(n.Conductor)
	}
	return m
}

// waitOwnership polls the controllers until they agree on every one of the nodes, each owned
// by one of hosts, every host owning some; it returns the shares and how long it took.
func waitOwnership(t *testing.T, within time.Duration, uuids []string, hosts []string, ds ...*daemon) (map[string]int, time.Duration) {
	t.Helper()
	start := time.Now()
	var why string
	for {
		views := make([]map[string]string, len(ds))
		for i, d := range ds {
			views[i] = d.ownership()
		}
		share := map[string]int{}
		why = ""
		for _, id := range uuids {
			o, ok := views[0][id]
			if !ok {
				why = "node " + id + " lost"
				break
			}
			for i, v := range views[1:] {
				if v[id] != o {
					why = fmt.Sprintf("node %s owned by %q for %s but %q for %s", id, o, ds[0].host, v[id], ds[i+1].host)
				}
			}
			if !slices.Contains(hosts, o) {
				why = fmt.Sprintf("node %s owned by %q", id, o)
			}
			share[o]++
		}
		if why == "" && len(share) < len(hosts) {
			why = fmt.Sprintf("shares %v: a host owns nothing", share)
		}
		if why == "" {
			return share, time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("after %v: %s", within, why)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestClusterKill9 runs three controllers on one PostgreSQL database with 300 fake-hardware
// nodes, kills one with SIGKILL while it runs deploys and power changes, and checks that
// within two heartbeat timeouts the others own all its nodes (none lost, none owned twice,
// both agreeing), its in-flight tasks failed with a last_error that says so and unlocked; then
// that a fourth controller joining takes its share.
func TestClusterKill9(t *testing.T) {
	gate(t, "FERRUM_SLOW", "starts and kills three controllers")
	db := pgDatabase(t)
	c1 := startController(t, db, "ctl-1")
	c2 := startController(t, db, "ctl-2")
	c3 := startController(t, db, "ctl-3", "--fake-deploy-delay", "60s", "--fake-power-delay", "60s")

	const nodes = 300
	uuids := make([]string, nodes)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < nodes; i += 8 {
				var out apiNode
				if code, _, body := c1.call("POST", "/v1/nodes", map[string]any{"driver": "fake-hardware", "name": fmt.Sprintf("n%03d", i)}, &out); code != 201 {
					t.Errorf("create: %d %s", code, body)
					return
				}
				uuids[i] = out.UUID
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	share, took := waitOwnership(t, 3*clusterTimeout, uuids, []string{"ctl-1", "ctl-2", "ctl-3"}, c1, c2, c3)
	t.Logf("3 controllers: shares %v (agreed after %v)", share, took)

	// In flight on ctl-3: two deploys and two power changes, each locked by ctl-3.
	deploys, powers := uuids[:2], uuids[2:4]
	for _, id := range uuids[:4] {
		if code, _, body := c1.call("PUT", "/v1/nodes/"+id+"/states/provision", map[string]any{"target": "manage"}, nil); code != 202 {
			t.Fatalf("manage: %d %s", code, body)
		}
		c1.waitNode(id, "manageable", func(x apiNode) bool { return x.ProvisionState == "manageable" && x.Reservation == nil })
	}
	for _, id := range deploys {
		patch := []map[string]any{{"op": "add", "path": "/driver_info/fake_clean_delay", "value": "0s"}}
		if code, _, body := c1.call("PATCH", "/v1/nodes/"+id, patch, nil); code != 200 {
			t.Fatalf("patch: %d %s", code, body)
		}
		c1.call("PUT", "/v1/nodes/"+id+"/states/provision", map[string]any{"target": "provide"}, nil)
		c1.waitNode(id, "available", func(x apiNode) bool { return x.ProvisionState == "available" && x.Reservation == nil })
		if code, _, body := c3.call("PUT", "/v1/nodes/"+id+"/states/provision", map[string]any{"target": "active"}, nil); code != 202 {
			t.Fatalf("deploy on ctl-3: %d %s", code, body)
		}
	}
	for _, id := range powers {
		if code, _, body := c3.call("PUT", "/v1/nodes/"+id+"/states/power", map[string]any{"target": "power on"}, nil); code != 202 {
			t.Fatalf("power on on ctl-3: %d %s", code, body)
		}
	}
	for _, id := range uuids[:4] {
		if x := c1.node(id); str(x.Reservation) != "ctl-3" {
			t.Fatalf("node %s not locked by ctl-3 before the kill: reservation %q", id, str(x.Reservation))
		}
	}

	c3.stop(syscall.SIGKILL)
	killed := time.Now()
	share, _ = waitOwnership(t, 2*clusterTimeout, uuids, []string{"ctl-1", "ctl-2"}, c1, c2)
	owned := time.Since(killed)
	want := map[string]string{deploys[0]: "deploy failed", deploys[1]: "deploy failed", powers[0]: "manageable", powers[1]: "manageable"}
	for {
		pending := ""
		for id, state := range want {
			x := c2.node(id)
			if x.ProvisionState != state || x.Reservation != nil || x.TargetPowerState != nil {
				pending = fmt.Sprintf("node %s: state %q (want %q) reservation %q target power %q", id, x.ProvisionState, state, str(x.Reservation), str(x.TargetPowerState))
				continue
			}
			msg := "can't be resumed by conductor ctl-"
			if state == "manageable" {
				msg = "Pending power operation was aborted due to conductor take over"
			}
			if !strings.Contains(str(x.LastError), msg) {
				t.Errorf("node %s last_error %q does not contain %q", id, str(x.LastError), msg)
			}
		}
		if pending == "" {
			break
		}
		if time.Since(killed) > 2*clusterTimeout {
			t.Fatalf("in-flight tasks not failed within %v of the kill: %s", 2*clusterTimeout, pending)
		}
		time.Sleep(100 * time.Millisecond)
	}
	recovered := time.Since(killed)
	t.Logf("kill -9 of ctl-3: nodes owned by the others after %v (shares %v), in-flight tasks failed after %v; heartbeat timeout %v",
		owned, share, recovered, clusterTimeout)

	var conds struct {
		Conductors []struct {
			Hostname string `json:"hostname"`
			Alive    bool   `json:"alive"`
		} `json:"conductors"`
	}
	if code, _, body := c1.call("GET", "/v1/conductors", nil, &conds); code != 200 {
		t.Fatalf("conductors: %d %s", code, body)
	}
	alive := map[string]bool{}
	for _, c := range conds.Conductors {
		alive[c.Hostname] = c.Alive
	}
	if !alive["ctl-1"] || !alive["ctl-2"] || alive["ctl-3"] || len(alive) != 3 {
		t.Errorf("GET /v1/conductors alive = %v, want ctl-1 and ctl-2 alive, ctl-3 dead", alive)
	}

	// A failed node takes new work from any controller.
	if code, _, body := c2.call("PUT", "/v1/nodes/"+deploys[0]+"/states/provision", map[string]any{"target": "deleted"}, nil); code != 202 {
		t.Fatalf("undeploy after the take-over: %d %s", code, body)
	}
	c2.waitNode(deploys[0], "available", func(x apiNode) bool { return x.ProvisionState == "available" && x.Reservation == nil })

	c4 := startController(t, db, "ctl-4")
	share, took = waitOwnership(t, 3*clusterTimeout, uuids, []string{"ctl-1", "ctl-2", "ctl-4"}, c1, c2, c4)
	t.Logf("ctl-4 joined: shares %v after %v", share, took)
	keys := make([]string, 0, len(share))
	for h := range share {
		keys = append(keys, h)
	}
	sort.Strings(keys)
	for _, h := range keys {
		if share[h] < nodes/6 {
			t.Errorf("%s owns %d of %d nodes, want about a third", h, share[h], nodes)
		}
	}
}

// TestClusterAgentAnyController: two controllers on one database share one PKI (ctl-2's
// data dir gets a copy of ctl-1's pki directory). A node's agent booted with ctl-2's address
// enrolls and connects there, whichever controller owns the node on the ring; ctl-2 serves
// its session (get_status on connect), and both controllers show the same agent record and
// the same conductor for the node, because both read the shared database.
func TestClusterAgentAnyController(t *testing.T) {
	gate(t, "FERRUM_SLOW", "starts two controllers and an agent process")
	db := pgDatabase(t)
	agentBin, certsBin := agentBinaries(t)
	addr1, addr2 := freeAddr(t), freeAddr(t)
	common := []string{"--fake-inspect-delay", "10m", "--agent-heartbeat-interval", "200ms", "--shutdown-timeout", "2s"}
	c1 := startController(t, db, "ctl-1", append([]string{"--agent-addr", addr1}, common...)...)
	dir2 := t.TempDir()
	if out, err := exec.Command("cp", "-a", filepath.Join(c1.DataDir, "pki"), dir2).CombinedOutput(); err != nil {
		t.Fatalf("copy the PKI: %v %s", err, out)
	}
	c2 := startController(t, db, "ctl-2", append([]string{"--data-dir", dir2, "--agent-addr", addr2}, common...)...)

	var n apiNode
	if code, _, body := c1.call("POST", "/v1/nodes", map[string]any{"driver": "fake-hardware", "name": "agent-0"}, &n); code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	for _, step := range []struct{ target, state string }{{"manage", "manageable"}, {"inspect", "inspecting"}} {
		if code, _, body := c1.call("PUT", "/v1/nodes/"+n.UUID+"/states/provision", map[string]any{"target": step.target}, nil); code != 202 {
			t.Fatalf("%s: %d %s", step.target, code, body)
		}
		c1.waitNode(n.UUID, step.state, func(x apiNode) bool { return x.ProvisionState == step.state })
	}
	out, err := exec.Command(certsBin, "kernel-params", "-dir", filepath.Join(dir2, "pki"), "-node", n.UUID,
		"-controller", addr2).Output()
	if err != nil {
		t.Fatalf("ferrum-certs kernel-params: %v", err)
	}
	cmdline := filepath.Join(t.TempDir(), "cmdline")
	if err := os.WriteFile(cmdline, []byte("console=ttyS0 "+strings.TrimSpace(string(out))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := startAgentProc(t, agentBin, cmdline)
	connected := func(v agentView) bool {
		f := v.DriverInternalInfo.Ferrum
		return f != nil && f.Connected && f.Status != nil && f.Status.BootID != ""
	}
	v2 := c2.waitAgent(n.UUID, "connected to ctl-2", connected)
	v1 := c1.waitAgent(n.UUID, "seen connected through ctl-1", connected)
	if v1.DriverInternalInfo.Ferrum.Status.BootID != v2.DriverInternalInfo.Ferrum.Status.BootID {
		t.Errorf("the controllers show different agents: %+v vs %+v", v1.DriverInternalInfo.Ferrum, v2.DriverInternalInfo.Ferrum)
	}
	o1, o2 := c1.ownership()[n.UUID], c2.ownership()[n.UUID]
	if o1 != o2 || (o1 != "ctl-1" && o1 != "ctl-2") {
		t.Errorf("node conductor: %q through ctl-1, %q through ctl-2", o1, o2)
	}
	t.Logf("node owned by %s on the ring; its agent is connected to ctl-2", o1)
	a.stop(t)
	c1.waitAgent(n.UUID, "disconnected", func(v agentView) bool {
		f := v.DriverInternalInfo.Ferrum
		return f != nil && !f.Connected
	})
}
