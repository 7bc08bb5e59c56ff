package diag

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ferrumhq/ferrum/agent/runner"
	"github.com/ferrumhq/ferrum/shared/proto"
)

func run(t *testing.T, r *runner.Runner, name, args string) proto.Result {
	t.Helper()
	j, perr := r.Start(proto.Command{ID: name, Name: name, Args: json.RawMessage(args)}, nil)
	if perr != nil {
		t.Fatal(perr)
	}
	<-j.Done()
	return j.Result()
}

func TestCommands(t *testing.T) {
	r := runner.New(runner.Config{Log: zerolog.Nop()})
	defer r.Close()
	logs := NewRing(64)
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	Register(r, Info{AgentVersion: "1.2.3", BootID: "b", Started: now.Add(-time.Second), Now: func() time.Time { return now },
		Running: func() *proto.Running { return &proto.Running{ID: "c", Name: "x"} }}, logs)
	for i := range 10 {
		fmt.Fprintf(logs, "line %d\n", i)
	}

	var st proto.Status
	res := run(t, r, proto.CmdGetStatus, "")
	if res.Error != nil || json.Unmarshal(res.Data, &st) != nil {
		t.Fatalf("get_status: %+v", res)
	}
	if st.AgentVersion != "1.2.3" || st.UptimeMs != 1000 || st.Running == nil || st.Running.ID != "c" {
		t.Errorf("status %+v", st)
	}
	var pong proto.Pong
	res = run(t, r, proto.CmdPing, `{"payload":"hi"}`)
	if res.Error != nil || json.Unmarshal(res.Data, &pong) != nil || pong.Payload != "hi" {
		t.Errorf("ping: %+v", res)
	}
	if res := run(t, r, proto.CmdPing, `[1]`); res.Error == nil || res.Error.Code != proto.CodeBadRequest {
		t.Errorf("ping with bad args: %+v", res.Error)
	}
	var l proto.Logs
	res = run(t, r, proto.CmdGetLogs, `{"max_bytes":20}`)
	if res.Error != nil || json.Unmarshal(res.Data, &l) != nil {
		t.Fatalf("get_logs: %+v", res)
	}
	if !l.Truncated || l.Text != "line 8\nline 9\n" {
		t.Errorf("get_logs = %q truncated=%v", l.Text, l.Truncated)
	}
	if text, _ := logs.Tail(0); strings.HasPrefix(text, "line 0") || !strings.HasSuffix(text, "line 9\n") {
		t.Errorf("ring kept %q", text)
	}
}
