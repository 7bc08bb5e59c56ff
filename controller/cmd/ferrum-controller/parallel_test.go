package main

import (
	"sync"
	"testing"
)

// TestParallelConflictingProvisionHTTP sends 100 concurrent deploy requests for one node: exactly
// one is accepted, every other answer is 409 (locked) or 400 (no longer a valid transition),
// and the node ends active.
func TestParallelConflictingProvisionHTTP(t *testing.T) {
	d := startDaemon(t, "", "--fake-deploy-delay", "500ms", "--lock-retry-interval", "100ms")
	var n apiNode
	if code, _, body := d.call("POST", "/v1/nodes", map[string]any{"driver": "fake-hardware", "name": "race"}, &n); code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	for _, verb := range []string{"manage", "provide"} {
		if code, _, body := d.call("PUT", "/v1/nodes/race/states/provision", map[string]any{"target": verb}, nil); code != 202 {
			t.Fatalf("%s: %d %s", verb, code, body)
		}
		d.waitNode("race", "settled", func(x apiNode) bool { return x.TargetProvisionState == nil && x.Reservation == nil })
	}
	codes := make([]int, 100)
	bodies := make([]string, 100)
	var wg sync.WaitGroup
	for i := range codes {
		wg.Go(func() {
			codes[i], _, bodies[i] = d.call("PUT", "/v1/nodes/race/states/provision", map[string]any{"target": "active"}, nil)
		})
	}
	wg.Wait()
	count := map[int]int{}
	for i, c := range codes {
		count[c]++
		if c != 202 && c != 409 && c != 400 {
			t.Errorf("answer %d: %d %s", i, c, bodies[i])
		}
	}
	if count[202] != 1 {
		t.Fatalf("%d requests accepted (%v), want exactly 1", count[202], count)
	}
	t.Logf("answers: %v", count)
	final := d.waitNode("race", "active", func(x apiNode) bool { return x.ProvisionState == "active" && x.Reservation == nil })
	if final.TargetProvisionState != nil || final.LastError != nil {
		t.Fatalf("final node: %+v", final)
	}
}
