package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ferrumhq/ferrum/controller/nova/novatest"
)

const novaPassword = "Nv4-ferrum-keystone-pw"

var novaUser = novatest.User{Name: "ironic", Password: novaPassword, Domain: "Default", Project: "service", Roles: []string{"service"}}

// startNova starts the Keystone + Nova double knowing instances, and writes a clouds.yaml.
func startNova(t *testing.T, instances ...string) (*novatest.Server, []string) {
	t.Helper()
	var known []novatest.Instance
	for _, i := range instances {
		known = append(known, novatest.Instance{UUID: i, HasHost: true})
	}
	srv, err := novatest.Start(novatest.Config{Users: []novatest.User{novaUser}, Instances: known})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	yaml := filepath.Join(t.TempDir(), "clouds.yaml")
	if err := os.WriteFile(yaml, []byte(srv.CloudsYAML(novaUser, novatest.AppCred{ID: "x", Secret: "y"})), 0o600); err != nil {
		t.Fatal(err)
	}
	return srv, []string{"--nova-cloud", "nova-test", "--nova-clouds-file", yaml,
		"--nova-min-backoff", "200ms", "--nova-max-backoff", "3s", "--nova-poll-interval", "200ms"}
}

type powerEvents struct {
	Stats struct {
		Pending, Failed, Delivered, Superseded int
	} `json:"stats"`
	Events []struct {
		NodeUUID     string `json:"node_uuid"`
		InstanceUUID string `json:"instance_uuid"`
		PowerState   string `json:"power_state"`
		Status       string `json:"status"`
		Attempts     int    `json:"attempts"`
		LastError    string `json:"last_error"`
	} `json:"power_events"`
}

func (d *daemon) powerEvents() powerEvents {
	d.t.Helper()
	var pe powerEvents
	if code, _, body := d.call("GET", "/v1/power_events?limit=1000", nil, &pe); code != 200 {
		d.t.Fatalf("GET /v1/power_events: %d %s", code, body)
	}
	return pe
}

// power sets a node's power and waits for it.
func (d *daemon) power(ident, target string) {
	d.t.Helper()
	if code, _, body := d.call("PUT", "/v1/nodes/"+ident+"/states/power", map[string]any{"target": target}, nil); code != 202 {
		d.t.Fatalf("power %s %s: %d %s", ident, target, code, body)
	}
	want := "power on"
	if strings.Contains(target, "off") {
		want = "power off"
	}
	d.waitNode(ident, want, func(n apiNode) bool {
		return str(n.PowerState) == want && n.TargetPowerState == nil && n.Reservation == nil
	})
}

func (d *daemon) setInstance(ident, instance string) {
	d.t.Helper()
	op := []map[string]any{{"op": "add", "path": "/instance_uuid", "value": instance}}
	if instance == "" {
		op = []map[string]any{{"op": "remove", "path": "/instance_uuid"}}
	}
	if code, _, body := d.call("PATCH", "/v1/nodes/"+ident, op, nil); code != 200 {
		d.t.Fatalf("set instance_uuid of %s: %d %s", ident, code, body)
	}
}

func instanceFor(node, gen int) string {
	return fmt.Sprintf("%08x-0000-4000-8000-%012x", node, gen)
}

// TestNovaOutboxSurvivesKill9AndOutage: events delivered before an outage are not sent again;
// events recorded while Nova is down (about a minute) survive a kill -9 of the controller
// and all arrive afterwards, each exactly once and in order per node.
func TestNovaOutboxSurvivesKill9AndOutage(t *testing.T) {
	gate(t, "FERRUM_SLOW", "kills the daemon and keeps Nova down for a minute")
	const nodes = 8
	var instances []string
	for i := range nodes {
		instances = append(instances, instanceFor(i, 1), instanceFor(i, 2))
	}
	nova, flags := startNova(t, instances...)
	dir := t.TempDir()
	d := startDaemon(t, dir, flags...)
	uuids := make([]string, nodes)
	for i := range nodes {
		var n apiNode
		if code, _, body := d.call("POST", "/v1/nodes", map[string]any{"driver": "fake-hardware", "name": fmt.Sprintf("nv%d", i)}, &n); code != 201 {
			t.Fatalf("create: %d %s", code, body)
		}
		uuids[i] = n.UUID
		d.setInstance(n.UUID, instanceFor(i, 1))
	}
	// Before the outage: every node powered on, delivered.
	for _, u := range uuids {
		d.power(u, "power on")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := novatest.WaitFor(ctx, func() bool { return len(nova.Received()) == nodes }); err != nil {
		t.Fatalf("before the outage: received %d of %d events", len(nova.Received()), nodes)
	}

	// Nova goes down. Each node: power off (instance 1), a new instance, power on (instance 2).
	outage := time.Now()
	nova.SetDown(novatest.DownReset)
	for i, u := range uuids {
		d.power(u, "power off")
		d.setInstance(u, "")
		d.setInstance(u, instanceFor(i, 2))
		d.power(u, "power on")
	}
	if pe := d.powerEvents(); pe.Stats.Pending != 2*nodes || pe.Stats.Delivered != nodes {
		t.Fatalf("while down: stats %+v, want %d pending, %d delivered", pe.Stats, 2*nodes, nodes)
	}
	time.Sleep(5 * time.Second) // a few retries fail
	retried := 0
	for _, e := range d.powerEvents().Events {
		if e.Status == "pending" && e.Attempts > 0 && e.LastError != "" {
			retried++
		}
	}
	if retried == 0 {
		t.Fatalf("no pending event was retried with its error recorded")
	}
	d.stop(syscall.SIGKILL)

	d2 := startDaemon(t, dir, flags...)
	if pe := d2.powerEvents(); pe.Stats.Pending != 2*nodes {
		t.Fatalf("after kill -9: stats %+v, want %d still pending", pe.Stats, 2*nodes)
	}
	time.Sleep(time.Until(outage.Add(time.Minute)))
	if got := len(nova.Received()); got != nodes {
		t.Fatalf("Nova received %d events while down, want still %d", got, nodes)
	}
	nova.SetDown(novatest.Up)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel2()
	if err := novatest.WaitFor(ctx2, func() bool { return d2.powerEvents().Stats.Pending == 0 }); err != nil {
		t.Fatalf("after the outage: %+v", d2.powerEvents().Stats)
	}
	time.Sleep(time.Second) // nothing more arrives
	seen := map[string]int{}
	order := map[int][]string{}
	for _, r := range nova.Received() {
		key := r.ServerUUID + " " + r.Tag
		seen[key]++
		var node, gen int
		fmt.Sscanf(r.ServerUUID, "%08x-0000-4000-8000-%012x", &node, &gen)
		order[node] = append(order[node], fmt.Sprintf("%d %s", gen, r.Tag))
	}
	for key, n := range seen {
		if n != 1 {
			t.Errorf("%s received %d times, want once", key, n)
		}
	}
	for i := range nodes {
		want := []string{"1 POWER_ON", "1 POWER_OFF", "2 POWER_ON"}
		if diff := cmp.Diff(want, order[i]); diff != "" {
			t.Errorf("node %d events in Nova's order (-want +got):\n%s", i, diff)
		}
	}
	if st := d2.powerEvents().Stats; st.Delivered != 3*nodes || st.Failed != 0 {
		t.Errorf("final stats %+v, want %d delivered", st, 3*nodes)
	}
	if r := nova.Refused(); len(r) != 0 {
		t.Errorf("the Nova double refused requests: %v", r)
	}
	if strings.Contains(d.logs.String()+d2.logs.String(), novaPassword) {
		t.Errorf("the Keystone password appears in the logs")
	}
	if m := d2.metrics(); !strings.Contains(m, `ferrum_nova_outbox_events{status="delivered"} 24`) {
		t.Errorf("metrics lack the delivered count:\n%s", grepLines(m, "ferrum_nova"))
	}
}

func (d *daemon) metrics() string {
	d.t.Helper()
	_, _, body := d.call("GET", "/metrics", nil, nil)
	return body
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestNovaPowerUpdateWithIpmiSim: a node with an instance behind a real ipmi_sim BMC. The
// baremetal CLI powers it off → Nova hears POWER_OFF. Powered on behind the controller's
// back: forcing (the default) powers it off again and tells Nova POWER_OFF (the recorded
// state, as Ironic); without forcing the controller records the change and tells Nova
// POWER_ON.
func TestNovaPowerUpdateWithIpmiSim(t *testing.T) {
	sim, ipmitool := startIpmiSim(t, "baremetal")
	const instance = "3b2a5e4c-7d0d-4a47-9d7e-3d1a3f5b9c10"
	nova, flags := startNova(t, instance)
	tags := func() []string {
		var out []string
		for _, r := range nova.Received() {
			out = append(out, r.Tag)
		}
		return out
	}
	waitTags := func(want ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := novatest.WaitFor(ctx, func() bool { return len(tags()) >= len(want) }); err != nil {
			t.Fatalf("Nova received %v, want %v", tags(), want)
		}
		time.Sleep(1500 * time.Millisecond) // and nothing more
		if diff := cmp.Diff(want, tags()); diff != "" {
			t.Fatalf("Nova's events (-want +got):\n%s", diff)
		}
	}

	d := startDaemon(t, "", append(flags, "--power-sync-interval", "1s")...)
	b := &baremetal{t: t, d: d, home: t.TempDir()}
	uuid := d.ipmiNode("sim-0", sim.Host, sim.Port, bmcPassword)
	d.manage(uuid)
	b.ok("node", "power", "on", "sim-0") // no instance yet: Nova hears nothing
	d.waitNode(uuid, "powered on", func(n apiNode) bool { return str(n.PowerState) == "power on" && n.TargetPowerState == nil })
	b.ok("node", "set", "sim-0", "--instance-uuid", instance)

	b.ok("node", "power", "off", "sim-0")
	d.waitNode(uuid, "powered off", func(n apiNode) bool { return str(n.PowerState) == "power off" && n.TargetPowerState == nil })
	waitTags("POWER_OFF")

	// Forcing: the sync drives the BMC back off and reports the recorded state.
	ipmitool("power", "on")
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(d.logs.String(), "changing the hardware") {
		if time.Now().After(deadline) {
			t.Fatal("the sync never corrected the hardware")
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitTags("POWER_OFF", "POWER_OFF")
	if out := ipmitool("power", "status"); !strings.Contains(out, "Chassis Power is off") {
		t.Fatalf("after the forced correction ipmitool says %q", out)
	}

	// Not forcing: the change is recorded and reported.
	d.stop(syscall.SIGTERM)
	d2 := startDaemon(t, d.DataDir, append(flags, "--power-sync-interval", "1s", "--force-power-state-during-sync=false")...)
	ipmitool("power", "on")
	d2.waitNode(uuid, "recorded as on", func(n apiNode) bool { return str(n.PowerState) == "power on" })
	waitTags("POWER_OFF", "POWER_OFF", "POWER_ON")
	if r := nova.Refused(); len(r) != 0 {
		t.Errorf("the Nova double refused requests: %v", r)
	}
	d2.noSecretsInLogs()
	if strings.Contains(d.logs.String()+d2.logs.String(), novaPassword) {
		t.Errorf("the Keystone password appears in the logs")
	}
}
