// Package diag is the agent's diagnostic commands: get_status, ping and get_logs (the agent's
// own recent log, kept in a Ring). None of them changes the machine.
//
// cmd/ferrum-agent registers them with agent/runner; they know nothing of the transport.
package diag

import (
	"context"
	"encoding/json"
	"os"
	"sync"
	"time"

	"github.com/ferrumhq/ferrum/agent/runner"
	"github.com/ferrumhq/ferrum/shared/proto"
)

// Info is what get_status reports about the agent itself.
type Info struct {
	AgentVersion string
	BootID       string
	Started      time.Time
	// Running reports the mutating command in progress (runner.Runner.Running).
	Running func() *proto.Running
	Now     func() time.Time
}

// Register adds get_status, ping and, when logs is not nil, get_logs to r.
func Register(r *runner.Runner, info Info, logs *Ring) {
	if info.Now == nil {
		info.Now = time.Now
	}
	r.Register(proto.CmdGetStatus, runner.HandlerFunc(func(context.Context, json.RawMessage, func(float64, string)) (any, error) {
		host, _ := os.Hostname()
		st := proto.Status{AgentVersion: info.AgentVersion, BootID: info.BootID, Hostname: host,
			Time: info.Now().UTC(), UptimeMs: info.Now().Sub(info.Started).Milliseconds()}
		if info.Running != nil {
			st.Running = info.Running()
		}
		return st, nil
	}), false)
	r.Register(proto.CmdPing, runner.HandlerFunc(func(_ context.Context, args json.RawMessage, _ func(float64, string)) (any, error) {
		var a proto.PingArgs
		if err := proto.DecodeArgs(args, &a); err != nil {
			return nil, err
		}
		return proto.Pong{Payload: a.Payload, Time: info.Now().UTC()}, nil
	}), false)
	if logs != nil {
		r.Register(proto.CmdGetLogs, runner.HandlerFunc(func(_ context.Context, args json.RawMessage, _ func(float64, string)) (any, error) {
			var a proto.LogsArgs
			if err := proto.DecodeArgs(args, &a); err != nil {
				return nil, err
			}
			if a.MaxBytes < 0 {
				return nil, proto.Errorf(proto.CodeBadRequest, "max_bytes must not be negative")
			}
			text, truncated := logs.Tail(a.MaxBytes)
			return proto.Logs{Text: text, Truncated: truncated}, nil
		}), false)
	}
}

// DefaultLogBytes is what get_logs returns when max_bytes is 0.
const DefaultLogBytes = 256 << 10

// Ring keeps the newest bytes written to it, up to its size, cut at line boundaries when
// read. It is an io.Writer for the agent's logger.
type Ring struct {
	mu      sync.Mutex
	buf     []byte
	size    int
	dropped bool
}

// NewRing returns a Ring of size bytes.
func NewRing(size int) *Ring { return &Ring{size: size} }

// Write implements io.Writer.
func (r *Ring) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf = append(r.buf, p...)
	if over := len(r.buf) - r.size; over > 0 {
		r.buf = append(r.buf[:0:0], r.buf[over:]...)
		r.dropped = true
	}
	return len(p), nil
}

// Tail returns at most max bytes (DefaultLogBytes when 0) of the newest complete lines, and
// whether older lines were left out.
func (r *Ring) Tail(max int) (string, bool) {
	if max <= 0 {
		max = DefaultLogBytes
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.buf
	truncated := r.dropped
	if len(b) > max {
		b = b[len(b)-max:]
		truncated = true
	}
	if truncated {
		// Drop the partial first line.
		for i, c := range b {
			if c == '\n' {
				b = b[i+1:]
				break
			}
		}
	}
	return string(b), truncated
}
