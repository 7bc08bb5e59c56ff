package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/ferrumhq/ferrum/controller/conductor"
	"github.com/ferrumhq/ferrum/controller/node"
)

func TestErrorStatus(t *testing.T) {
	cases := []struct {
		name       string
		err        error
		wantStatus int
		wantMsg    string
	}{
		{"not-found", node.NotFound("Node", "x"), 404, "Node x could not be found."},
		{"conflict", node.Errorf(node.ErrConflict, "A node with name a already exists."), 409, "A node with name a already exists."},
		{"invalid", node.Errorf(node.ErrInvalid, "bad"), 400, "bad"},
		{"forbidden", node.Errorf(node.ErrForbidden, "Node x is protected"), 403, "Node x is protected"},
		{"no-worker", node.Errorf(node.ErrNoWorker, "pool full"), 503, msgNoWorker},
		{"locked", &node.LockedError{Node: "u", Holder: "h"}, 409,
			"Node u is locked by host h, please retry after the current operation is completed."},
		{"invalid-state", &node.InvalidStateError{Node: "u", Verb: "active", State: node.Enroll}, 400,
			`The requested action "active" can not be performed on node "u" while it is in state "enroll".`},
		{"wrapped-node-error", fmt.Errorf("conductor: %w", node.NotFound("Port", "p")), 404, "Port p could not be found."},
		{"wrapped-locked", fmt.Errorf("x: %w", &node.LockedError{Node: "u", Holder: "h"}), 409,
			"Node u is locked by host h, please retry after the current operation is completed."},
		{"bare-sentinel", fmt.Errorf("store: row: %w", node.ErrNotFound), 404, msgNotFound},
		{"bare-no-worker", node.ErrNoWorker, 503, msgNoWorker},
		{"lock-lost", node.ErrLockLost, 500, fmt.Sprintf(msgInternal, "req-1")},
		{"plain", errors.New("sqlite: disk I/O error at /var/lib/ferrum.db"), 500, fmt.Sprintf(msgInternal, "req-1")},
		{"api-error", notAcceptable(), 406, "Request not acceptable."},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, msg, _ := errorStatus(tc.err, "req-1")
			if status != tc.wantStatus || msg != tc.wantMsg {
				t.Errorf("errorStatus(%v) = %d %q, want %d %q", tc.err, status, msg, tc.wantStatus, tc.wantMsg)
			}
		})
	}
}

func TestErrorBody(t *testing.T) {
	cases := []struct {
		name   string
		status int
		msg    string
		webob  bool
		want   string
	}{
		{"client", 404, "Node no-such-node could not be found.", false,
			`{"error_message": "{\"faultcode\": \"Client\", \"faultstring\": \"Node no-such-node could not be found.\", \"debuginfo\": null}"}`},
		{"server", 503, "No free conductor workers available", false,
			`{"error_message": "{\"faultcode\": \"Server\", \"faultstring\": \"No free conductor workers available\", \"debuginfo\": null}"}`},
		{"webob", 406, "Invalid value for X-OpenStack-Ironic-API-Version header", true,
			`{"error_message": "{\"code\": 406, \"title\": \"Not Acceptable\", \"description\": \"Invalid value for X-OpenStack-Ironic-API-Version header\"}"}`},
		{"quotes-and-unicode", 400, `The requested action "x" – é`, false,
			`{"error_message": "{\"faultcode\": \"Client\", \"faultstring\": \"The requested action \\\"x\\\" \\u2013 \\u00e9\", \"debuginfo\": null}"}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(errorBody(tc.status, tc.msg, tc.webob)); got != tc.want {
				t.Errorf("errorBody = %s\nwant       %s", got, tc.want)
			}
		})
	}
}

// TestInternalErrorNotLeaked: a 500 names the request, never the cause.
func TestInternalErrorNotLeaked(t *testing.T) {
	h, be := newTestAPI(t)
	be.FailNext("ListNodes", errors.New("sqlite: secret path /var/lib/x.db"))
	r := do(t, h, "1.78", "GET", "/v1/nodes", "")
	status, msg := r.fault(t)
	if status != http.StatusInternalServerError {
		t.Fatalf("status = %d, want 500", status)
	}
	if strings.Contains(msg, "sqlite") || !strings.Contains(msg, r.header.Get(hdrRequestID)) {
		t.Errorf("500 message = %q: must hide the cause and name the request id", msg)
	}
}

func TestNoWorker503(t *testing.T) {
	h, be := newTestAPI(t)
	mustCreateNode(t, h, `{"driver": "fake-hardware", "name": "n0"}`)
	be.FailNext("SetProvisionState", node.Errorf(node.ErrNoWorker, "Requested action cannot be performed due to lack of free conductor workers."))
	r := do(t, h, "1.78", "PUT", "/v1/nodes/n0/states/provision", `{"target": "manage"}`)
	if status, msg := r.fault(t); status != 503 || msg != msgNoWorker {
		t.Errorf("no worker = %d %q, want 503 %q", status, msg, msgNoWorker)
	}
}

func TestPanicIs500(t *testing.T) {
	_, be := newTestAPI(t)
	h, err := New(Config{Backend: panicBackend{be}, Hostname: "h"})
	if err != nil {
		t.Fatal(err)
	}
	r := do(t, h, "1.78", "GET", "/v1/drivers", "")
	if status, _ := r.fault(t); status != 500 {
		t.Errorf("panicking backend: status %d, want 500", status)
	}
}

type panicBackend struct{ Backend }

func (panicBackend) Drivers(context.Context) ([]conductor.DriverInfo, error) { panic("boom") }

// TestLogging: every request is logged at debug; a 5xx at error with its cause.
func TestLogging(t *testing.T) {
	_, be := newTestAPI(t)
	var buf bytes.Buffer
	h, err := New(Config{Backend: be, Hostname: "h", Log: zerolog.New(&buf).Level(zerolog.DebugLevel)})
	if err != nil {
		t.Fatal(err)
	}
	do(t, h, "1.78", "GET", "/v1/nodes", "")
	be.FailNext("ListNodes", errors.New("disk on fire"))
	r := do(t, h, "1.78", "GET", "/v1/nodes", "")
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		lines = append(lines, m)
	}
	var debug, errs int
	for _, l := range lines {
		switch l["level"] {
		case "debug":
			debug++
		case "error":
			errs++
			if l["error"] != "disk on fire" || l["request_id"] != r.header.Get(hdrRequestID) || l["status"] != float64(500) {
				t.Errorf("error line = %v", l)
			}
		}
	}
	if debug != 2 || errs != 1 {
		t.Errorf("log lines: %d debug, %d error; want 2 and 1:\n%s", debug, errs, buf.String())
	}
}
