package main

import (
	"syscall"
	"testing"
)

// TestGracefulShutdown: SIGTERM lets a running task finish before the daemon exits cleanly, so
// a restart finds the node where the task left it, not failed.
func TestGracefulShutdown(t *testing.T) {
	dir := t.TempDir()
	d := startDaemon(t, dir, "--fake-deploy-delay", "1s")
	if code, _, body := d.call("POST", "/v1/nodes", map[string]any{"driver": "fake-hardware", "name": "g"}, nil); code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	for _, verb := range []string{"manage", "provide"} {
		d.call("PUT", "/v1/nodes/g/states/provision", map[string]any{"target": verb}, nil)
		d.waitNode("g", "settled", func(x apiNode) bool { return x.TargetProvisionState == nil && x.Reservation == nil })
	}
	if code, _, body := d.call("PUT", "/v1/nodes/g/states/provision", map[string]any{"target": "active"}, nil); code != 202 {
		t.Fatalf("deploy: %d %s", code, body)
	}
	d.stop(syscall.SIGTERM)
	if !d.cmd.ProcessState.Success() {
		t.Fatalf("daemon exit after SIGTERM: %v\n%s", d.cmd.ProcessState, d.logs.String())
	}
	d2 := startDaemon(t, dir)
	if n := d2.node("g"); n.ProvisionState != "active" || n.Reservation != nil || n.LastError != nil {
		t.Fatalf("after graceful restart: %+v", n)
	}
}
