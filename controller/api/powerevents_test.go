package api

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ferrumhq/ferrum/controller/node"
)

// withEvents adds a fixed power event outbox to the test backend.
type withEvents struct {
	Backend
	got node.PowerEventQuery
}

func (w *withEvents) PowerEvents(_ context.Context, q node.PowerEventQuery) (node.PowerEventStats, []*node.PowerEvent, error) {
	w.got = q
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	return node.PowerEventStats{Pending: 1, Failed: 1, OldestPending: t0}, []*node.PowerEvent{
		{ID: 2, NodeUUID: nodeU, InstanceUUID: "3b2a5e4c-1111-4111-8111-111111111111", PowerState: node.PowerOff,
			Status: node.EventPending, Attempts: 3, Code: 503, LastError: "Nova answered HTTP 503", CreatedAt: t0, NextAttempt: t0.Add(time.Minute)},
		{ID: 1, NodeUUID: nodeU, InstanceUUID: "3b2a5e4c-1111-4111-8111-111111111111", PowerState: node.PowerOn,
			Status: node.EventFailed, Attempts: 1, Code: 404, CreatedAt: t0, FinishedAt: t0.Add(time.Second)},
	}, nil
}

func TestPowerEvents(t *testing.T) {
	_, be := newTestAPI(t)
	putNode(be, &node.Node{UUID: nodeU, Name: "n", ProvisionState: node.Active})
	w := &withEvents{Backend: be}
	h, err := New(Config{Backend: w, Hostname: "h"})
	if err != nil {
		t.Fatal(err)
	}
	r := do(t, h, "1.82", "GET", "/v1/power_events?status=pending&node=n&limit=5", "")
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if diff := cmp.Diff(node.PowerEventQuery{Status: "pending", NodeUUID: nodeU, Limit: 5}, w.got); diff != "" {
		t.Errorf("query (-want +got):\n%s", diff)
	}
	want := `{"stats": {"pending": 1, "failed": 1, "delivered": 0, "superseded": 0, "oldest_pending": "2026-11-22T10:00:00+00:00"}, "power_events": [` +
		`{"id": 2, "node_uuid": "` + nodeU + `", "instance_uuid": "3b2a5e4c-1111-4111-8111-111111111111", "power_state": "power off", "status": "pending", "attempts": 3, "code": 503, "last_error": "Nova answered HTTP 503", "created_at": "2026-11-22T10:00:00+00:00", "next_attempt": "2026-11-22T10:01:00+00:00", "finished_at": null}, ` +
		`{"id": 1, "node_uuid": "` + nodeU + `", "instance_uuid": "3b2a5e4c-1111-4111-8111-111111111111", "power_state": "power on", "status": "failed", "attempts": 1, "code": 404, "last_error": null, "created_at": "2026-11-22T10:00:00+00:00", "next_attempt": null, "finished_at": "2026-11-22T10:00:01+00:00"}]}`
	if r.body != want {
		t.Errorf("body:\n got %s\nwant %s", r.body, want)
	}
	for _, bad := range []string{"?status=lost", "?limit=0", "?limit=x", "?limit=1001", "?other=1"} {
		if r := do(t, h, "1.82", "GET", "/v1/power_events"+bad, ""); r.status != 400 {
			t.Errorf("%s: status %d, want 400", bad, r.status)
		}
	}
	if r := do(t, h, "1.82", "GET", "/v1/power_events?node=missing", ""); r.status != 404 {
		t.Errorf("unknown node: status %d, want 404", r.status)
	}
	// Without an outbox the endpoint does not exist.
	plain, _ := New(Config{Backend: be, Hostname: "h"})
	if r := do(t, plain, "1.82", "GET", "/v1/power_events", ""); r.status != 404 {
		t.Errorf("without a reporter: status %d, want 404", r.status)
	}
}
