package conductor

import (
	"context"
	"fmt"
	"time"

	"github.com/ferrumhq/ferrum/controller/node"
)

// powerTargets maps a requested power action to the state it ends in.
var powerTargets = map[string]string{
	node.PowerOn: node.PowerOn, node.Rebooting: node.PowerOn, node.SoftRebooting: node.PowerOn,
	node.PowerOff: node.PowerOff, node.SoftPowerOff: node.PowerOff,
}

// SetPowerState starts a power action (Ironic's change_node_power_state). The worker stores
// target_power_state before the call returns nil; the result lands in power_state or last_error.
func (c *Conductor) SetPowerState(ctx context.Context, ident, target string, timeout time.Duration) error {
	final, ok := powerTargets[target]
	if !ok {
		return &node.InvalidStateError{Node: ident, Verb: target, State: ""}
	}
	n, err := c.lock(ctx, ident)
	if err != nil {
		return err
	}
	spawned := false
	defer func() {
		if !spawned {
			c.unlock(n.UUID)
		}
	}()
	if n.ProvisionState == node.Cleaning || n.ProvisionState == node.CleanWait {
		return &node.InvalidStateError{Node: ident, Verb: target, State: n.ProvisionState}
	}
	d, err := c.driver(n)
	if err != nil {
		return err
	}
	if d.Power == nil {
		return node.Errorf(node.ErrInvalid, "The power interface of driver %s does not support power actions on node %s.", n.Driver, n.UUID)
	}
	if err := d.Power.Validate(ctx, n); err != nil {
		return node.Errorf(node.ErrInvalid, "Failed to validate power driver interface for node %s. Error: %v", n.UUID, err)
	}
	spawned = true
	return c.startTask(ctx, n, func(n *node.Node) {
		n.TargetPowerState = final
		n.LastError = ""
	}, func(ctx context.Context, t *task) {
		if err := c.powerAction(ctx, t.n, d, target, timeout); err != nil {
			c.log.Warn().Err(err).Str("node_id", t.n.UUID).Str("target", target).Msg("power action failed")
		}
	})
}

// powerAction performs a power action on a locked node and records the outcome (Ironic's
// node_power_action): power_state on success, last_error on failure, target cleared either way.
// Every successful action is published (savePowerChange).
func (c *Conductor) powerAction(ctx context.Context, n *node.Node, d *Driver, target string, timeout time.Duration) error {
	final := powerTargets[target]
	n.TargetPowerState = final
	err := d.Power.SetPowerState(ctx, n, target, timeout)
	n.TargetPowerState = ""
	if err != nil {
		n.LastError = fmt.Sprintf("Failed to change power state to '%s' by '%s'. Error: %v", final, target, err)
		if serr := c.save(ctx, n); serr != nil {
			return fmt.Errorf("%w (and saving the failure: %v)", err, serr)
		}
		return err
	}
	n.PowerState = final
	if err := c.savePowerChange(ctx, n, final); err != nil {
		return err
	}
	c.log.Info().Str("node_id", n.UUID).Str("power_state", final).Str("action", target).Msg("power state changed")
	return nil
}

// PowerEventLog is an optional Store ability: reading the power event outbox.
type PowerEventLog interface {
	ListPowerEvents(ctx context.Context, q node.PowerEventQuery) ([]*node.PowerEvent, error)
	PowerEventStats(ctx context.Context) (node.PowerEventStats, error)
}

// PowerEvents returns the outbox counts and the rows q selects (newest first). A store
// without an outbox is node.ErrNotFound.
func (c *Conductor) PowerEvents(ctx context.Context, q node.PowerEventQuery) (node.PowerEventStats, []*node.PowerEvent, error) {
	l, ok := c.store.(PowerEventLog)
	if !ok {
		return node.PowerEventStats{}, nil, node.Errorf(node.ErrNotFound, "This store keeps no power events.")
	}
	st, err := l.PowerEventStats(ctx)
	if err != nil {
		return st, nil, err
	}
	evs, err := l.ListPowerEvents(ctx, q)
	return st, evs, err
}
