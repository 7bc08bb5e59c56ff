package proto

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "write golden files of the current version (older versions are frozen)")

var (
	t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	t1 = t0.Add(1500 * time.Millisecond)
)

func raw(s string) json.RawMessage { return json.RawMessage(s) }

// example is one message as a peer of a given version sends it.
type example struct {
	name string // golden file name without .json
	msg  any    // a Message (framed in an envelope) or a command payload (plain JSON)
}

// examples returns every message and command payload as protocol version v writes it. A
// version only adds: every example of v-1 exists at v with a superset of its keys
// (TestAppendOnly).
func examples(v int) []example {
	hello := Hello{Version: v, MinVersion: 1, Features: Features(v), AgentVersion: "0.1.0", BootID: "4f1c2b7e"}
	result := Result{ID: "c-1", Data: raw(`{"payload":"x","time":"2026-11-22T10:00:00Z"}`)}
	if v >= 2 {
		hello.Pending = []Pending{{ID: "c-7", Name: "write_image"}, {ID: "c-8", Name: "erase", Done: true}}
		result.StartedAt, result.FinishedAt = t0, t1
	}
	ex := []example{
		{"hello", hello},
		{"hello_ack", HelloAck{Version: v, Features: Features(v), Node: "7d0d3b3e-5a36-4a47-9d7e-3d1a3f5b9c10", HeartbeatMs: 30000}},
		{"hello_ack.refused", HelloAck{Error: &Error{Code: CodeUnsupported, Message: "protocol version 9..9 not supported"}}},
		{"heartbeat", Heartbeat{Time: t0, Seq: 42, Running: "c-7"}},
		{"event", Event{Kind: "booted", Time: t0, Message: "agent started", Data: raw(`{"kernel":"6.1.0"}`)}},
		{"command", Command{ID: "c-1", Name: CmdPing, Args: raw(`{"payload":"x"}`), TimeoutMs: 5000}},
		{"ack", Ack{ID: "c-1"}},
		{"progress", Progress{ID: "c-7", Time: t0, Percent: 42.5, Message: "writing", Data: raw(`{"bytes":1024}`)}},
		{"result", result},
		{"result.error", Result{ID: "c-2", Error: &Error{Code: CodeBusy, Message: "command c-7 (write_image) is running", Retryable: true}}},
		{"cancel", Cancel{ID: "c-7"}},
		{"renew_request", RenewRequest{CSR: "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n"}},
		{"renew_response", RenewResponse{Chain: []string{"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"}}},
		{"renew_response.error", RenewResponse{Error: &Error{Code: CodeUnauthorized, Message: "certificate revoked"}}},
		{"get_status.result", Status{AgentVersion: "0.1.0", BootID: "4f1c2b7e", Hostname: "ramdisk", Time: t0, UptimeMs: 1234,
			Running: &Running{ID: "c-7", Name: "write_image", StartedAt: t0}}},
		{"ping.args", PingArgs{Payload: "x"}},
		{"ping.result", Pong{Payload: "x", Time: t0}},
	}
	if v >= 2 {
		ex = append(ex,
			example{"get_logs.args", LogsArgs{MaxBytes: 65536}},
			example{"get_logs.result", Logs{Text: "line 1\nline 2\n", Truncated: true}})
	}
	if v >= 3 {
		for _, f := range v3Examples {
			ex = append(ex, f()...)
		}
	}
	return ex
}

// v3Examples holds the capability commands' examples (version 3 and later); each capability's
// test file (inspect_test.go, image_test.go, ...) appends its own in an init function.
var v3Examples []func() []example

func encode(t *testing.T, m any) []byte {
	t.Helper()
	var b []byte
	var err error
	if msg, ok := m.(Message); ok {
		b, err = Marshal(msg)
	} else {
		b, err = json.Marshal(m)
	}
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		t.Fatal(err)
	}
	out.WriteByte('\n')
	return out.Bytes()
}

func goldenPath(v int, name string) string {
	return filepath.Join("testdata", fmt.Sprintf("v%d", v), name+".json")
}

// TestGolden pins the encoding of every message at every version. Goldens of older versions
// are frozen: -update writes only the current version's (and missing files).
func TestGolden(t *testing.T) {
	for v := 1; v <= Version; v++ {
		for _, ex := range examples(v) {
			t.Run(fmt.Sprintf("v%d/%s", v, ex.name), func(t *testing.T) {
				got := encode(t, ex.msg)
				path := goldenPath(v, ex.name)
				want, err := os.ReadFile(path)
				if *update && (v == Version || errors.Is(err, os.ErrNotExist)) {
					if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(path, got, 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				if err != nil {
					t.Fatalf("%v (run go test -update to create it)", err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("encoding changed for %s:\n got: %s\nwant: %s", path, got, want)
				}
			})
		}
	}
}

// TestGoldenFilesAreExamples catches golden files left behind by a rename: every file under
// testdata is produced by an example.
func TestGoldenFilesAreExamples(t *testing.T) {
	files, err := filepath.Glob("testdata/v*/*.json")
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for v := 1; v <= Version; v++ {
		for _, ex := range examples(v) {
			known[goldenPath(v, ex.name)] = true
		}
	}
	for _, f := range files {
		if !known[f] {
			t.Errorf("%s is not produced by any example", f)
		}
	}
	if len(files) == 0 {
		t.Fatal("no golden files")
	}
}

// keys flattens a JSON value into "path:kind" entries.
func keys(prefix string, v any, out map[string]string) {
	switch x := v.(type) {
	case map[string]any:
		out[prefix] = "object"
		for k, e := range x {
			keys(prefix+"/"+k, e, out)
		}
	case []any:
		out[prefix] = "array"
		for _, e := range x {
			keys(prefix+"[]", e, out)
		}
	case string:
		out[prefix] = "string"
	case float64:
		out[prefix] = "number"
	case bool:
		out[prefix] = "bool"
	case nil:
		out[prefix] = "null"
	}
}

func goldenKeys(t *testing.T, v int, name string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(goldenPath(v, name))
	if err != nil {
		t.Fatal(err)
	}
	var x any
	if err := json.Unmarshal(b, &x); err != nil {
		t.Fatalf("%s: %v", goldenPath(v, name), err)
	}
	out := map[string]string{}
	keys("", x, out)
	return out
}

// TestAppendOnly proves the protocol only grows: every message of version v-1 exists at v
// with every key it had, of the same JSON kind.
func TestAppendOnly(t *testing.T) {
	for v := 2; v <= Version; v++ {
		for _, ex := range examples(v - 1) {
			oldK, newK := goldenKeys(t, v-1, ex.name), goldenKeys(t, v, ex.name)
			var missing []string
			for k, kind := range oldK {
				if newK[k] != kind {
					missing = append(missing, fmt.Sprintf("%s (%s → %q)", k, kind, newK[k]))
				}
			}
			sort.Strings(missing)
			if len(missing) > 0 {
				t.Errorf("v%d %s lost or changed keys of v%d: %s", v, ex.name, v-1, strings.Join(missing, ", "))
			}
		}
	}
}

// messageFor returns a zero message of the envelope type.
func messageFor(typ string) Message {
	switch typ {
	case TypeHello:
		return &Hello{}
	case TypeHelloAck:
		return &HelloAck{}
	case TypeHeartbeat:
		return &Heartbeat{}
	case TypeEvent:
		return &Event{}
	case TypeCommand:
		return &Command{}
	case TypeAck:
		return &Ack{}
	case TypeProgress:
		return &Progress{}
	case TypeResult:
		return &Result{}
	case TypeCancel:
		return &Cancel{}
	case TypeRenewRequest:
		return &RenewRequest{}
	case TypeRenewResponse:
		return &RenewResponse{}
	}
	return nil
}

// TestCurrentReadsOlder: this build decodes what a peer of any older version (down to
// MinVersion) sends, strictly (no field it does not know), and re-encodes it unchanged.
func TestCurrentReadsOlder(t *testing.T) {
	for v := MinVersion; v <= Version; v++ {
		for _, ex := range examples(v) {
			msg, ok := ex.msg.(Message)
			if !ok {
				continue
			}
			t.Run(fmt.Sprintf("v%d/%s", v, ex.name), func(t *testing.T) {
				b, err := os.ReadFile(goldenPath(v, ex.name))
				if err != nil {
					t.Fatal(err)
				}
				var env Envelope
				if err := json.Unmarshal(b, &env); err != nil {
					t.Fatal(err)
				}
				m := messageFor(env.Type)
				if m == nil || env.Type != msg.MessageType() {
					t.Fatalf("envelope type %q, want %q", env.Type, msg.MessageType())
				}
				dec := json.NewDecoder(bytes.NewReader(env.Body))
				dec.DisallowUnknownFields()
				if err := dec.Decode(m); err != nil {
					t.Fatalf("strict decode: %v", err)
				}
				if err := env.Decode(m); err != nil {
					t.Fatalf("Decode: %v", err)
				}
				if got := encode(t, m); !bytes.Equal(got, b) {
					t.Errorf("round trip changed it:\n got: %s\nwant: %s", got, b)
				}
			})
		}
	}
}

// TestOlderReadsNewer: a peer decodes messages with fields it does not know (a newer peer's
// additions), keeping the ones it knows.
func TestOlderReadsNewer(t *testing.T) {
	for _, ex := range examples(Version) {
		msg, ok := ex.msg.(Message)
		if !ok {
			continue
		}
		b, err := Marshal(msg)
		if err != nil {
			t.Fatal(err)
		}
		var env Envelope
		if err := json.Unmarshal(b, &env); err != nil {
			t.Fatal(err)
		}
		var obj map[string]any
		if err := json.Unmarshal(env.Body, &obj); err != nil {
			t.Fatal(err)
		}
		obj["field_from_the_future"] = map[string]any{"x": 1}
		env.Body, _ = json.Marshal(obj)
		m := messageFor(env.Type)
		if err := env.Decode(m); err != nil {
			t.Errorf("%s with an unknown field: %v", ex.name, err)
		}
	}
}

func TestNegotiate(t *testing.T) {
	tests := []struct {
		name                           string
		ours, ourMin, theirs, theirMin int
		want                           int
	}{
		{"same", 2, 1, 2, 1, 2},
		{"older-peer", 2, 1, 1, 1, 1},
		{"newer-peer", 2, 1, 5, 1, 2},
		{"peer-too-old", 3, 2, 1, 1, 0},
		{"we-too-old", 1, 1, 3, 2, 0},
		{"garbage", 2, 1, 0, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Negotiate(tc.ours, tc.ourMin, tc.theirs, tc.theirMin); got != tc.want {
				t.Errorf("Negotiate(%d, %d, %d, %d) = %d, want %d", tc.ours, tc.ourMin, tc.theirs, tc.theirMin, got, tc.want)
			}
		})
	}
	if got, want := Features(1), []string{FeatureRenew}; !slices.Equal(got, want) {
		t.Errorf("Features(1) = %v, want %v", got, want)
	}
	if got, want := Common([]string{"a", "b", "c"}, []string{"c", "a"}), []string{"a", "c"}; !slices.Equal(got, want) {
		t.Errorf("Common = %v, want %v", got, want)
	}
}

func TestFrames(t *testing.T) {
	var buf bytes.Buffer
	in := Command{ID: "c-1", Name: CmdPing, Args: raw(`{"payload":"x"}`)}
	if err := Write(&buf, in); err != nil {
		t.Fatal(err)
	}
	if err := Write(&buf, Ack{ID: "c-1"}); err != nil {
		t.Fatal(err)
	}
	var got Command
	if err := ReadAs(&buf, &got); err != nil {
		t.Fatal(err)
	}
	if got.ID != in.ID || got.Name != in.Name || string(got.Args) != string(in.Args) {
		t.Errorf("ReadAs = %+v, want %+v", got, in)
	}
	var wrong Result
	if err := ReadAs(&buf, &wrong); !errors.Is(err, ErrUnexpected) {
		t.Errorf("ReadAs(ack into result) = %v, want ErrUnexpected", err)
	}
	if _, err := Read(&buf); err != io.EOF {
		t.Errorf("Read at end = %v, want io.EOF", err)
	}

	tests := []struct {
		name  string
		frame []byte
	}{
		{"truncated-header", []byte{0, 0}},
		{"truncated-body", []byte{0, 0, 0, 10, '{'}},
		{"too-large", []byte{0xff, 0, 0, 0}},
		{"not-json", append([]byte{0, 0, 0, 3}, "abc"...)},
		{"no-type", append([]byte{0, 0, 0, 2}, "{}"...)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Read(bytes.NewReader(tc.frame)); err == nil || err == io.EOF {
				t.Errorf("Read(%q) = %v, want an error", tc.frame, err)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		m    Message
		ok   bool
	}{
		{"hello/ok", Hello{Version: 2, MinVersion: 1}, true},
		{"hello/min-above-max", Hello{Version: 1, MinVersion: 2}, false},
		{"hello/zero", Hello{}, false},
		{"hello/bad-pending", Hello{Version: 2, MinVersion: 1, Pending: []Pending{{}}}, false},
		{"hello_ack/ok", HelloAck{Version: 1}, true},
		{"hello_ack/refusal", HelloAck{Error: &Error{Code: CodeUnsupported}}, true},
		{"hello_ack/refusal-without-code", HelloAck{Error: &Error{}}, false},
		{"command/ok", Command{ID: "a", Name: "ping"}, true},
		{"command/no-id", Command{Name: "ping"}, false},
		{"command/long-id", Command{ID: strings.Repeat("x", MaxIDLen+1), Name: "ping"}, false},
		{"command/no-name", Command{ID: "a"}, false},
		{"command/negative-timeout", Command{ID: "a", Name: "ping", TimeoutMs: -1}, false},
		{"result/ok", Result{ID: "a"}, true},
		{"result/error-without-code", Result{ID: "a", Error: &Error{Message: "x"}}, false},
		{"event/no-kind", Event{}, false},
		{"renew_request/empty", RenewRequest{}, false},
		{"renew_response/empty", RenewResponse{}, false},
		{"ack/no-id", Ack{}, false},
		{"cancel/no-id", Cancel{}, false},
		{"progress/no-id", Progress{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.m.Validate(); (err == nil) != tc.ok {
				t.Errorf("%T.Validate() = %v, want ok=%v", tc.m, err, tc.ok)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	err := fmt.Errorf("run: %w", Errorf(CodeBusy, "command %s is running", "c-7"))
	if !errors.Is(err, &Error{Code: CodeBusy}) {
		t.Errorf("errors.Is(%v, busy) = false", err)
	}
	if errors.Is(err, &Error{Code: CodeFailed}) {
		t.Errorf("errors.Is(%v, failed) = true", err)
	}
	if got := CodeOf(err); got != CodeBusy {
		t.Errorf("CodeOf = %q, want busy", got)
	}
	var e *Error
	if !errors.As(err, &e) || !e.Retryable {
		t.Errorf("busy should be retryable: %+v", e)
	}
	if got := CodeOf(errors.New("x")); got != "" {
		t.Errorf("CodeOf(plain) = %q", got)
	}
}
