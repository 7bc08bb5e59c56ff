package agentlink_test

import (
	"fmt"
	"testing"

	"github.com/ferrumhq/ferrum/agent/link"
	"github.com/ferrumhq/ferrum/controller/agentlink"
	"github.com/ferrumhq/ferrum/shared/proto"
)

// TestContract runs the current controller with an agent one protocol version older, and the
// current agent with a controller one version older (as each would behave at that version):
// they agree on the older version, everything of that version works, and what it lacks is
// refused with a code — never sent and misunderstood.
func TestContract(t *testing.T) {
	older := proto.Version - 1
	tests := []struct {
		agent, controller int
	}{
		{older, proto.Version},
		{proto.Version, older},
		{proto.Version, proto.Version},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("agent-v%d/controller-v%d", tc.agent, tc.controller), func(t *testing.T) {
			e := newEnv(t, func(c *agentlink.Config) { c.ProtocolVersion = tc.controller })
			a := e.startAgent(nodeA, func(c *link.Config) { c.ProtocolVersion = tc.agent })
			ack := a.waitUp(t)
			want := min(tc.agent, tc.controller)
			if ack.Version != want {
				t.Fatalf("negotiated v%d, want v%d", ack.Version, want)
			}
			if ss := e.srv.Sessions(); len(ss) != 1 || ss[0].ProtocolVersion != want {
				t.Errorf("controller sees %+v", ss)
			}
			for _, name := range []string{proto.CmdGetStatus, proto.CmdPing} {
				if res, err := run(t, e, nodeA, name, nil); err != nil || res.Error != nil {
					t.Errorf("%s: %v %+v", name, err, res.Error)
				}
			}
			res, err := run(t, e, nodeA, proto.CmdGetLogs, nil)
			if want >= 2 {
				if err != nil || res.Error != nil {
					t.Errorf("get_logs at v%d: %v %+v", want, err, res.Error)
				}
			} else if proto.CodeOf(err) != proto.CodeUnsupported {
				t.Errorf("get_logs at v%d = %v %+v, want unsupported", want, err, res.Error)
			}
		})
	}
}
