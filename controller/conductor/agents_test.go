package conductor_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/ferrumhq/ferrum/controller/conductor"
	"github.com/ferrumhq/ferrum/controller/node"
	"github.com/ferrumhq/ferrum/shared/proto"
)

// agents is a hand-written conductor.Agents.
type agents struct {
	mu    sync.Mutex
	calls []string
	boot  []string
}

func (a *agents) Run(_ context.Context, id string, cmd proto.Command, progress func(proto.Progress)) (proto.Result, error) {
	a.mu.Lock()
	a.calls = append(a.calls, id+" "+cmd.Name)
	a.mu.Unlock()
	if progress != nil {
		progress(proto.Progress{ID: cmd.ID, Percent: 50})
	}
	if cmd.Name == proto.CmdGetStatus {
		b, _ := json.Marshal(proto.Status{AgentVersion: "9.9", BootID: "b1"})
		return proto.Result{ID: cmd.ID, Data: b}, nil
	}
	return proto.Result{ID: cmd.ID, Data: json.RawMessage(`"ok"`)}, nil
}

func (a *agents) BootParams(_ context.Context, id string) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.boot = append(a.boot, id)
	return "ferrum.controller=x ferrum.fingerprint=y ferrum.token=z", nil
}

func TestAgentCommands(t *testing.T) {
	fa := &agents{}
	e := newEnv(t, func(c *conductor.Config) { c.Agents = fa; c.ShutdownTimeout = 100 * time.Millisecond })
	ctx := context.Background()
	n := e.create(t, &node.Node{Name: "a", DriverInfo: map[string]any{"fake_inspect_delay": "1h"}})

	if _, err := e.c.RunAgentCommand(ctx, n.UUID, proto.Command{Name: proto.CmdPing}, nil); !errors.Is(err, node.ErrInvalid) {
		t.Errorf("RunAgentCommand in enroll = %v, want ErrInvalid (no agent in that state)", err)
	}
	if err := e.c.SetProvisionState(ctx, n.UUID, conductor.ProvisionRequest{Target: "manage"}); err != nil {
		t.Fatal(err)
	}
	e.wait(t, n.UUID, node.Manageable)
	if err := e.c.SetProvisionState(ctx, n.UUID, conductor.ProvisionRequest{Target: "inspect"}); err != nil {
		t.Fatal(err)
	}
	var progressed bool
	res, err := e.c.RunAgentCommand(ctx, "a", proto.Command{Name: proto.CmdPing}, func(proto.Progress) { progressed = true })
	if err != nil || string(res.Data) != `"ok"` || !progressed {
		t.Errorf("RunAgentCommand = %+v, %v (progress %v)", res, err, progressed)
	}
	params, err := e.c.AgentBootParams(ctx, "a")
	if err != nil || params == "" || len(fa.boot) != 1 || fa.boot[0] != n.UUID {
		t.Errorf("AgentBootParams = %q, %v (%v)", params, err, fa.boot)
	}

	// On connect the conductor asks for the agent's status (agentlink records it).
	if err := e.store.UpdateAgentLinks(ctx, []node.AgentLink{{NodeUUID: n.UUID, ConnectedAt: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	status := e.c.AgentConnected(ctx, n.UUID)
	if err := e.store.UpdateAgentLinks(ctx, []node.AgentLink{{NodeUUID: n.UUID, Status: status}}); err != nil {
		t.Fatal(err)
	}
	got, err := e.c.GetNode(ctx, n.UUID)
	if err != nil {
		t.Fatal(err)
	}
	var st proto.Status
	if got.Agent == nil || !got.Agent.Connected() || json.Unmarshal(got.Agent.Status, &st) != nil || st.AgentVersion != "9.9" {
		t.Errorf("GetNode().Agent = %+v", got.Agent)
	}
	list, err := e.c.ListNodes(ctx, node.NodeQuery{})
	if err != nil || len(list) != 1 || list[0].Agent == nil {
		t.Errorf("ListNodes agent links: %v %+v", err, list)
	}
}

func TestAgentCommandsDisabled(t *testing.T) {
	e := newEnv(t, nil)
	n := e.create(t, &node.Node{Name: "a"})
	if _, err := e.c.AgentBootParams(context.Background(), n.UUID); !errors.Is(err, node.ErrInvalid) {
		t.Errorf("AgentBootParams without agents = %v, want ErrInvalid", err)
	}
	if _, err := e.c.RunAgentCommand(context.Background(), n.UUID, proto.Command{Name: "ping"}, nil); proto.CodeOf(err) != proto.CodeNotConnected {
		t.Errorf("RunAgentCommand without agents = %v, want not_connected", err)
	}
}
