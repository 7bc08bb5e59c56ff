package conductor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"github.com/ferrumhq/ferrum/controller/node"
)

type checkpointKey struct{}

// Checkpoint saves a node in the middle of an operation its worker is running (the current
// deploy_step or clean_step, progress in driver_internal_info), so the API shows it. The
// interfaces the conductor calls (Deploy, Inspect, …) receive the ctx that makes it work;
// anywhere else it does nothing.
func Checkpoint(ctx context.Context, n *node.Node) error {
	if save, ok := ctx.Value(checkpointKey{}).(func(context.Context, *node.Node) error); ok {
		return save(ctx, n)
	}
	return nil
}

// withCheckpoint lets the worker's interfaces save the locked node.
func (c *Conductor) withCheckpoint(ctx context.Context) context.Context {
	return context.WithValue(ctx, checkpointKey{}, c.save)
}

// resumeStates are the states a node waits in for its agent; its connection resumes them.
var resumeStates = map[node.State]bool{node.DeployWait: true, node.CleanWait: true, node.InspectWait: true, node.RescueWait: true}

// resumeWithAgent continues a node that waited for its agent, which has just connected: the
// node goes back to its *ing state and its interface runs again, now with the agent there.
func (c *Conductor) resumeWithAgent(ctx context.Context, uuid string) error {
	n, err := c.lock(ctx, uuid)
	if err != nil {
		return err
	}
	spawned := false
	defer func() {
		if !spawned {
			c.unlock(n.UUID)
		}
	}()
	if !resumeStates[n.ProvisionState] || n.Maintenance {
		return nil
	}
	var target node.State
	if n.ProvisionState == node.CleanWait {
		target = n.TargetProvisionState // manual cleaning returns to manageable
	}
	tr, err := node.Apply(n.ProvisionState, node.EvResume, target)
	if err != nil {
		return fmt.Errorf("resume node %s: %w", n.UUID, err)
	}
	d, err := c.driver(n)
	if err != nil {
		return err
	}
	spawned = true
	return c.startTask(ctx, n, func(n *node.Node) { c.enter(n, tr, "") },
		func(ctx context.Context, t *task) { c.run(ctx, t, d) })
}

// inventoryInterfaces is the part of an Ironic inventory ports are made from.
type inventoryInterfaces struct {
	Interfaces []struct {
		Name       string `json:"name"`
		MACAddress string `json:"mac_address"`
		HasCarrier bool   `json:"has_carrier"`
	} `json:"interfaces"`
	Boot *struct {
		PXEInterface string `json:"pxe_interface"`
	} `json:"boot"`
}

// portsFromInventory creates a port for every interface MAC of the node's inventory that has
// none yet, as Ironic's inspection does (pxe_enabled for the interface it booted from). A
// MAC already used by another node's port is logged and skipped.
func (c *Conductor) portsFromInventory(ctx context.Context, n *node.Node) {
	if len(n.Inventory) == 0 {
		return
	}
	var inv inventoryInterfaces
	if err := json.Unmarshal(n.Inventory, &inv); err != nil {
		c.log.Warn().Str("node_id", n.UUID).Err(err).Msg("inventory has no readable interfaces")
		return
	}
	existing, err := c.store.ListPorts(ctx, node.PortQuery{NodeUUID: n.UUID})
	if err != nil {
		c.log.Warn().Str("node_id", n.UUID).Err(err).Msg("listing ports after inspection failed")
		return
	}
	have := map[string]bool{}
	for _, p := range existing {
		have[strings.ToLower(p.Address)] = true
	}
	pxe := ""
	if inv.Boot != nil {
		pxe = strings.ToLower(inv.Boot.PXEInterface)
	}
	for _, i := range inv.Interfaces {
		mac := strings.ToLower(i.MACAddress)
		if mac == "" || have[mac] {
			continue
		}
		have[mac] = true
		p := &node.Port{UUID: uuid.NewString(), NodeUUID: n.UUID, Address: mac, PXEEnabled: pxe == "" || pxe == mac,
			Extra: map[string]any{}, LocalLinkConnection: map[string]any{}, InternalInfo: map[string]any{},
			CreatedAt: c.cfg.Now().UTC()}
		normalizePort(p)
		if err := c.store.CreatePort(ctx, p); err != nil {
			if errors.Is(err, node.ErrConflict) {
				c.log.Warn().Str("node_id", n.UUID).Str("address", mac).Msg("inspection found a MAC another port already has; no port created")
				continue
			}
			c.log.Warn().Str("node_id", n.UUID).Str("address", mac).Err(err).Msg("creating a port from the inventory failed")
			continue
		}
		c.log.Info().Str("node_id", n.UUID).Str("address", mac).Str("interface", i.Name).Msg("port created from inspection")
	}
}
