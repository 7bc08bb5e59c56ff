package agentlink_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/ferrumhq/ferrum/agent/link"
	"github.com/ferrumhq/ferrum/agent/runner"
	"github.com/ferrumhq/ferrum/controller/agentlink"
	"github.com/ferrumhq/ferrum/shared/proto"
)

// work registers a mutating command that runs until released or cancelled.
func work(a *agent) (started chan struct{}, release chan struct{}) {
	started, release = make(chan struct{}, 8), make(chan struct{})
	a.runner.Register("work", runner.HandlerFunc(func(ctx context.Context, _ json.RawMessage, _ func(float64, string)) (any, error) {
		started <- struct{}{}
		select {
		case <-release:
			return map[string]string{"written": "yes"}, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}), true)
	a.runner.Register("slow_read", runner.HandlerFunc(func(ctx context.Context, _ json.RawMessage, _ func(float64, string)) (any, error) {
		started <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
		}
		return "read", nil
	}), false)
	return started, release
}

type outcome struct {
	res proto.Result
	err error
	at  time.Time
}

func runAsync(e *env, id, name string) chan outcome {
	ch := make(chan outcome, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		res, err := e.srv.Run(ctx, id, proto.Command{ID: "cmd-" + name, Name: name}, nil)
		ch <- outcome{res, err, time.Now()}
	}()
	return ch
}

func wait(t *testing.T, ch chan outcome) outcome {
	t.Helper()
	select {
	case o := <-ch:
		return o
	case <-time.After(20 * time.Second):
		t.Fatal("Run hangs 20s after the link dropped")
		return outcome{}
	}
}

// TestLinkDroppedMidCommand: the link drops while a command runs; the controller learns the
// outcome when the agent comes back, or marks the command failed — it never hangs.
func TestLinkDroppedMidCommand(t *testing.T) {
	tests := []struct {
		name         string
		agentVersion int
		ctrlVersion  int
		command      string
		after        func(t *testing.T, e *env, p *proxy, a *agent, release chan struct{})
		wantCode     proto.Code // "" = the command's own result arrives
		within       time.Duration
	}{
		{name: "agent-reconnects/result-delivered", command: "work",
			after: func(t *testing.T, e *env, p *proxy, a *agent, release chan struct{}) {
				a.waitUp(t) // back through the proxy, listing the command as pending
				close(release)
			}, within: 10 * time.Second},
		{name: "agent-reconnects/finished-while-away", command: "work",
			after: func(t *testing.T, e *env, p *proxy, a *agent, release chan struct{}) {
				close(release) // finishes before the agent is back; delivered afterwards
			}, within: 10 * time.Second},
		{name: "agent-does-not-come-back/link-lost", command: "work", wantCode: proto.CodeLinkLost,
			after: func(t *testing.T, e *env, p *proxy, a *agent, release chan struct{}) {
				p.ln.Close() // nowhere to reconnect to
			}, within: 5 * time.Second},
		{name: "agent-restarted/lost", command: "work", wantCode: proto.CodeLost,
			after: func(t *testing.T, e *env, p *proxy, a *agent, release chan struct{}) {
				p.ln.Close()
				a.stop()                      // the old agent process is gone
				e.startAgent(nodeA).waitUp(t) // a new one, without the command
			}, within: 10 * time.Second},
		{name: "old-agent-cannot-resume/link-lost", agentVersion: 1, command: "work", wantCode: proto.CodeLinkLost,
			within: time.Second},
		{name: "old-controller/link-lost", ctrlVersion: 1, command: "work", wantCode: proto.CodeLinkLost,
			within: time.Second},
		{name: "non-mutating/link-lost", command: "slow_read", wantCode: proto.CodeLinkLost,
			after: func(t *testing.T, e *env, p *proxy, a *agent, release chan struct{}) {
				a.waitUp(t)
			}, within: 10 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *agentlink.Config) {
				c.ResumeTimeout = 2 * time.Second
				c.ProtocolVersion = tc.ctrlVersion
			})
			p := newProxy(t, e.addr)
			a := e.startAgent(nodeA, func(c *link.Config) {
				c.Controller = p.addr()
				c.ProtocolVersion = tc.agentVersion
			})
			started, release := work(a)
			a.waitUp(t)
			ch := runAsync(e, nodeA, tc.command)
			<-started
			time.Sleep(50 * time.Millisecond) // the ack is on its way back
			p.sever()
			dropped := time.Now()
			if tc.after != nil {
				tc.after(t, e, p, a, release)
			}
			o := wait(t, ch)
			if took := o.at.Sub(dropped); took > tc.within {
				t.Errorf("Run returned %v after the drop, want within %v", took, tc.within)
			}
			if tc.wantCode == "" {
				if o.err != nil || o.res.Error != nil || string(o.res.Data) != `{"written":"yes"}` {
					t.Fatalf("Run = %+v, %v; want the command's result", o.res, o.err)
				}
				return
			}
			if got := proto.CodeOf(o.err); got != tc.wantCode {
				t.Fatalf("Run = %+v, %v; want code %s", o.res, o.err, tc.wantCode)
			}
			select {
			case <-release:
			default:
				close(release)
			}
		})
	}
}
