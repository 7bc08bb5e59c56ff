package runner

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ferrumhq/ferrum/shared/proto"
)

func newRunner(t *testing.T) *Runner {
	t.Helper()
	r := New(Config{Log: zerolog.New(zerolog.NewTestWriter(t))})
	r.Register("echo", HandlerFunc(func(_ context.Context, args json.RawMessage, progress func(float64, string)) (any, error) {
		progress(50, "half")
		return json.RawMessage(args), nil
	}), false)
	r.Register("block", HandlerFunc(func(ctx context.Context, _ json.RawMessage, _ func(float64, string)) (any, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}), true)
	r.Register("fail", HandlerFunc(func(context.Context, json.RawMessage, func(float64, string)) (any, error) {
		return nil, errors.New("disk on fire")
	}), false)
	r.Register("coded", HandlerFunc(func(context.Context, json.RawMessage, func(float64, string)) (any, error) {
		return nil, fmtErr()
	}), false)
	r.Register("panic", HandlerFunc(func(context.Context, json.RawMessage, func(float64, string)) (any, error) {
		panic("boom")
	}), false)
	t.Cleanup(func() { r.Close() })
	return r
}

func fmtErr() error {
	return errors.Join(proto.Errorf(proto.CodeBadRequest, "no such disk"))
}

func wait(t *testing.T, j *Job) proto.Result {
	t.Helper()
	select {
	case <-j.Done():
		return j.Result()
	case <-time.After(5 * time.Second):
		t.Fatalf("job %s did not end", j)
		return proto.Result{}
	}
}

func TestOutcomes(t *testing.T) {
	tests := []struct {
		name     string
		cmd      proto.Command
		wantCode proto.Code // "" = success
		wantData string
	}{
		{"success/data", proto.Command{ID: "1", Name: "echo", Args: json.RawMessage(`{"a":1}`)}, "", `{"a":1}`},
		{"failure/plain-error", proto.Command{ID: "2", Name: "fail"}, proto.CodeFailed, ""},
		{"failure/coded-error-kept", proto.Command{ID: "3", Name: "coded"}, proto.CodeBadRequest, ""},
		{"failure/panic", proto.Command{ID: "4", Name: "panic"}, proto.CodeInternal, ""},
		{"failure/timeout", proto.Command{ID: "5", Name: "block", TimeoutMs: 20}, proto.CodeTimeout, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRunner(t)
			var prog []proto.Progress
			j, perr := r.Start(tc.cmd, func(p proto.Progress) { prog = append(prog, p) })
			if perr != nil {
				t.Fatal(perr)
			}
			res := wait(t, j)
			if res.ID != tc.cmd.ID || res.StartedAt.IsZero() || res.FinishedAt.IsZero() {
				t.Errorf("result %+v lacks id or times", res)
			}
			if got := codeOf(res.Error); got != tc.wantCode {
				t.Errorf("code %q (%v), want %q", got, res.Error, tc.wantCode)
			}
			if string(res.Data) != tc.wantData {
				t.Errorf("data %s, want %s", res.Data, tc.wantData)
			}
			if tc.name == "success/data" && (len(prog) != 1 || prog[0].Percent != 50 || prog[0].ID != "1") {
				t.Errorf("progress %+v", prog)
			}
		})
	}
}

func codeOf(e *proto.Error) proto.Code {
	if e == nil {
		return ""
	}
	return e.Code
}

func TestRefusals(t *testing.T) {
	r := newRunner(t)
	blocking, perr := r.Start(proto.Command{ID: "b1", Name: "block"}, nil)
	if perr != nil {
		t.Fatal(perr)
	}
	tests := []struct {
		name string
		cmd  proto.Command
		want proto.Code
	}{
		{"unknown-command", proto.Command{ID: "u", Name: "nope"}, proto.CodeUnknownCommand},
		{"second-mutating-busy", proto.Command{ID: "b2", Name: "block"}, proto.CodeBusy},
		{"invalid", proto.Command{Name: "echo"}, proto.CodeBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, perr := r.Start(tc.cmd, nil)
			if perr == nil || perr.Code != tc.want {
				t.Errorf("Start(%+v) = %v, want %s", tc.cmd, perr, tc.want)
			}
		})
	}
	if perr != nil && !perr.Retryable {
		t.Error("busy should be retryable")
	}
	// Non-mutating commands run beside a mutating one.
	j, perr := r.Start(proto.Command{ID: "e", Name: "echo"}, nil)
	if perr != nil {
		t.Fatalf("echo beside a mutating command: %v", perr)
	}
	wait(t, j)
	// Same ID again is the same job (a controller repeating itself).
	again, perr := r.Start(proto.Command{ID: "b1", Name: "block"}, nil)
	if perr != nil || again != blocking {
		t.Errorf("restart of a running ID = %v, %v; want the same job", again, perr)
	}
	if got := r.Running(); got == nil || got.ID != "b1" {
		t.Errorf("Running() = %+v", got)
	}
	if !r.Cancel("b1") || r.Cancel("nope") {
		t.Error("Cancel results wrong")
	}
	if res := wait(t, blocking); codeOf(res.Error) != proto.CodeCancelled {
		t.Errorf("cancelled job: %+v", res.Error)
	}
	if r.Running() != nil {
		t.Error("mutating slot not released")
	}
	if _, perr := r.Start(proto.Command{ID: "b3", Name: "block"}, nil); perr != nil {
		t.Errorf("mutating command after the previous ended: %v", perr)
	}
	r.Close() // cancels b3 and waits for it
	if _, perr := r.Start(proto.Command{ID: "x", Name: "echo"}, nil); perr == nil {
		t.Error("Start after Close succeeded")
	}
}

// TestReportData: a handler's structured progress reaches the report as JSON data.
func TestReportData(t *testing.T) {
	r := New(Config{})
	defer r.Close()
	r.Register("work", HandlerFunc(func(ctx context.Context, _ json.RawMessage, _ func(float64, string)) (any, error) {
		ReportData(ctx, 50, "half", map[string]int{"bytes": 512})
		return nil, nil
	}), true)
	got := make(chan proto.Progress, 4)
	j, perr := r.Start(proto.Command{ID: "c1", Name: "work"}, func(p proto.Progress) { got <- p })
	if perr != nil {
		t.Fatal(perr)
	}
	<-j.Done()
	p := <-got
	if p.Percent != 50 || p.Message != "half" || string(p.Data) != `{"bytes":512}` {
		t.Errorf("progress = %+v (data %s)", p, p.Data)
	}
	ReportData(context.Background(), 1, "nowhere", nil) // outside a handler: nothing happens
}
