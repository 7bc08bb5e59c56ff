package conductor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ferrumhq/ferrum/controller/node"
	"github.com/ferrumhq/ferrum/shared/proto"
)

// RunAgentCommand runs cmd on the agent of a node whose provision state expects one.
func (c *Conductor) RunAgentCommand(ctx context.Context, ident string, cmd proto.Command, progress func(proto.Progress)) (proto.Result, error) {
	n, err := c.store.GetNode(ctx, ident)
	if err != nil {
		return proto.Result{}, err
	}
	if c.cfg.Agents == nil {
		return proto.Result{}, fmt.Errorf("conductor: %w", proto.Errorf(proto.CodeNotConnected, "agent tunnels are not enabled"))
	}
	if !n.ProvisionState.ExpectsAgent() {
		return proto.Result{}, node.Errorf(node.ErrInvalid, "Node %s in provision state %q has no agent.", n.UUID, n.ProvisionState)
	}
	return c.cfg.Agents.Run(ctx, n.UUID, cmd, progress)
}

// AgentBootParams mints a node's enrollment token and returns its agent's kernel command-line
// parameters; the boot interface calls it when it renders the node's ramdisk boot. The result
// holds a secret: never log it.
func (c *Conductor) AgentBootParams(ctx context.Context, ident string) (string, error) {
	n, err := c.store.GetNode(ctx, ident)
	if err != nil {
		return "", err
	}
	if c.cfg.Agents == nil {
		return "", node.Errorf(node.ErrInvalid, "Agent tunnels are not enabled on conductor %s.", c.host)
	}
	return c.cfg.Agents.BootParams(ctx, n.UUID)
}

// AgentConnected is called when a node's agent opens a session: the conductor asks the agent
// for its status and returns it, for agentlink to record with the node's agent link. A node
// waiting for its agent (wait call-back, clean wait, inspect wait, rescue wait) resumes.
func (c *Conductor) AgentConnected(ctx context.Context, nodeUUID string) json.RawMessage {
	if c.cfg.Agents == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	log := c.log.With().Str("node_id", nodeUUID).Logger()
	res, err := c.cfg.Agents.Run(ctx, nodeUUID, proto.Command{Name: proto.CmdGetStatus}, nil)
	if err == nil && res.Error != nil {
		err = res.Error
	}
	if err != nil {
		log.Warn().Err(err).Msg("agent status failed")
		return nil
	}
	var st proto.Status
	if err := json.Unmarshal(res.Data, &st); err != nil {
		log.Warn().Err(err).Msg("agent status undecodable")
		return nil
	}
	log.Debug().Str("agent_version", st.AgentVersion).Str("boot_id", st.BootID).Str("hostname", st.Hostname).Msg("agent status")
	if n, err := c.store.GetNode(ctx, nodeUUID); err == nil && resumeStates[n.ProvisionState] {
		// The task that booted the agent may still hold the lock for a moment.
		for attempt := 0; ; attempt++ {
			err := c.resumeWithAgent(ctx, nodeUUID)
			var locked *node.LockedError
			if errors.As(err, &locked) && attempt < 10 && ctx.Err() == nil {
				time.Sleep(time.Second)
				continue
			}
			if err != nil {
				log.Warn().Err(err).Str("state", string(n.ProvisionState)).Msg("resuming the node with its agent failed")
			}
			break
		}
	}
	return res.Data
}

// attachAgentLinks fills n.Agent for nodes whose agent link is recorded (when the store keeps
// them). A failure only leaves the links out.
func (c *Conductor) attachAgentLinks(ctx context.Context, ns ...*node.Node) {
	als, ok := c.store.(AgentLinkStore)
	if !ok || len(ns) == 0 {
		return
	}
	uuids := make([]string, len(ns))
	for i, n := range ns {
		uuids[i] = n.UUID
	}
	links, err := als.GetAgentLinks(ctx, uuids)
	if err != nil {
		c.log.Warn().Err(err).Msg("reading agent links failed")
		return
	}
	for _, n := range ns {
		n.Agent = links[n.UUID]
	}
}
