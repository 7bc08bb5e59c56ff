package main

import (
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// TestKill9WithTasksInFlight kills the daemon while fake tasks are running, restarts it on the
// same data, and checks that no node is left in a transient state or locked, and that
// last_error explains what happened.
func TestKill9WithTasksInFlight(t *testing.T) {
	gate(t, "FERRUM_SLOW", "starts and kills the daemon")
	dir := t.TempDir()
	d := startDaemon(t, dir, "--fake-deploy-delay", "30s", "--fake-clean-delay", "30s", "--fake-power-delay", "30s")

	const n = 6
	uuids := make([]string, n)
	for i := range n {
		var out apiNode
		code, _, body := d.call("POST", "/v1/nodes", map[string]any{"driver": "fake-hardware", "name": fmt.Sprintf("k%d", i)}, &out)
		if code != 201 {
			t.Fatalf("create: %d %s", code, body)
		}
		uuids[i] = out.UUID
	}
	// k0,k1 → verifying is instant; then provide (cleaning, 30 s); k2,k3 → power on (30 s);
	// k4 deploy needs available: give it through manage+provide with a short per-node delay.
	for _, id := range uuids {
		if code, _, body := d.call("PUT", "/v1/nodes/"+id+"/states/provision", map[string]any{"target": "manage"}, nil); code != 202 {
			t.Fatalf("manage: %d %s", code, body)
		}
	}
	for _, id := range uuids {
		d.waitNode(id, "manageable", func(x apiNode) bool { return x.ProvisionState == "manageable" && x.Reservation == nil })
	}
	for _, id := range uuids[4:] {
		patch := []map[string]any{{"op": "add", "path": "/driver_info/fake_clean_delay", "value": "0s"}}
		if code, _, body := d.call("PATCH", "/v1/nodes/"+id, patch, nil); code != 200 {
			t.Fatalf("patch: %d %s", code, body)
		}
		d.call("PUT", "/v1/nodes/"+id+"/states/provision", map[string]any{"target": "provide"}, nil)
		d.waitNode(id, "available", func(x apiNode) bool { return x.ProvisionState == "available" && x.Reservation == nil })
	}

	var wg sync.WaitGroup
	accept := func(path string, body map[string]any) {
		wg.Go(func() {
			if code, _, resp := d.call("PUT", path, body, nil); code != 202 {
				t.Errorf("PUT %s: %d %s", path, code, resp)
			}
		})
	}
	accept("/v1/nodes/"+uuids[0]+"/states/provision", map[string]any{"target": "provide"})
	accept("/v1/nodes/"+uuids[1]+"/states/provision", map[string]any{"target": "provide"})
	accept("/v1/nodes/"+uuids[2]+"/states/power", map[string]any{"target": "power on"})
	accept("/v1/nodes/"+uuids[3]+"/states/power", map[string]any{"target": "power on"})
	accept("/v1/nodes/"+uuids[4]+"/states/provision", map[string]any{"target": "active"})
	accept("/v1/nodes/"+uuids[5]+"/states/provision", map[string]any{"target": "active"})
	wg.Wait()
	if t.Failed() {
		return
	}
	// Every node is now mid-task and locked.
	for _, id := range uuids {
		if x := d.node(id); x.Reservation == nil {
			t.Fatalf("node %s not locked before the kill: %+v", id, x)
		}
	}
	d.stop(syscall.SIGKILL)

	d2 := startDaemon(t, dir)
	want := map[string]string{uuids[0]: "clean failed", uuids[1]: "clean failed",
		uuids[2]: "manageable", uuids[3]: "manageable", uuids[4]: "deploy failed", uuids[5]: "deploy failed"}
	for _, id := range uuids {
		x := d2.node(id)
		if x.ProvisionState != want[id] || x.Reservation != nil || x.TargetPowerState != nil {
			t.Errorf("node %s after restart: state %q (want %q) reservation %v target_power %v",
				id, x.ProvisionState, want[id], str(x.Reservation), str(x.TargetPowerState))
		}
		le := str(x.LastError)
		switch want[id] {
		case "manageable":
			if !strings.Contains(le, "Pending power operation was aborted") {
				t.Errorf("node %s last_error %q does not explain the aborted power action", id, le)
			}
		default:
			if !strings.Contains(le, "can't be resumed by conductor ferrum-test") {
				t.Errorf("node %s last_error %q does not explain the crash", id, le)
			}
		}
	}
	// The restarted daemon accepts new work on them.
	if code, _, body := d2.call("PUT", "/v1/nodes/"+uuids[4]+"/states/provision", map[string]any{"target": "deleted"}, nil); code != 202 {
		t.Fatalf("undeploy after restart: %d %s", code, body)
	}
	d2.waitNode(uuids[4], "available", func(x apiNode) bool { return x.ProvisionState == "available" && x.Reservation == nil })
}
